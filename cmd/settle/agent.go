package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"settle/controller"
	"settle/desired"
	"settle/state"
)

func runAgent(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("agent", "[-f FILE] [--mode enforce|report] [--listen ADDR]", `Watches the desired file's directory (editors and git replace files by
rename) and keeps the machine converged: on every save, every resync period
(agent.resync), SIGHUP, or POST /reconcile. An invalid file is logged as
FILE:LINE problems and changes nothing: the last good state keeps running.
A generation that fails is retried with capped backoff. In report mode drift
is recorded in status and journal, never repaired. One agent per state dir.
HTTP (loopback): /healthz, /status, /metrics, POST /reconcile.
Stops cleanly on SIGTERM or SIGINT, after the pass under way.`, stderr)
	file := fileFlag(fs)
	mode := fs.String("mode", "", "`enforce` or report; overrides agent.mode and agent.modes")
	listen := fs.String("listen", "", "HTTP `ADDR` (default agent.listen, 127.0.0.1:9813); \"off\" disables it")
	verbose := fs.Bool("v", false, "log debug detail")
	if done, code := parse(fs, args); done {
		return code
	}
	if *mode != "" && *mode != desired.ModeEnforce && *mode != desired.ModeReport {
		fmt.Fprintf(stderr, "settle agent: --mode must be enforce or report, not %q\n", *mode)
		return exitUsage
	}
	d, ok := load(*file, stderr)
	if !ok {
		fmt.Fprintln(stderr, "settle agent: refusing to start on an invalid desired file")
		return exitFail
	}
	lock, err := state.Acquire(d.Agent.StateDir)
	if err != nil {
		fmt.Fprintln(stderr, "settle agent:", err)
		return exitFail
	}
	defer lock.Release()
	log := newLogger(stderr, *verbose)
	host, closeHost, err := hostFor(context.Background(), d)
	if err != nil {
		fmt.Fprintln(stderr, "settle agent:", err)
		return exitFail
	}
	defer closeHost()
	eng, err := controller.NewEngine(host, log, d.Agent.StateDir)
	if err != nil {
		fmt.Fprintln(stderr, "settle agent:", err)
		return exitFail
	}
	eng.Notify = notifier(d, log)
	defer eng.Notify.Close(10 * time.Second)
	ag := controller.NewAgent(*file, eng, log)
	ag.Mode = *mode
	eng.Update(func(s *state.Status) {
		s.Mode = d.Agent.Mode
		if *mode != "" {
			s.Mode = *mode
		}
	})

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			ag.Trigger("SIGHUP")
		}
	}()

	addr := d.Agent.Listen
	if *listen != "" {
		addr = *listen
	}
	if addr != "off" {
		srv, err := serveHTTP(addr, eng, ag)
		if err != nil {
			fmt.Fprintln(stderr, "settle agent:", err)
			return exitFail
		}
		log.Info("http listening", "addr", srv.Addr)
		defer func() {
			c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			srv.Shutdown(c)
		}()
	}
	if err := ag.Run(ctx, d); err != nil {
		fmt.Fprintln(stderr, "settle agent:", err)
		return exitFail
	}
	return exitOK
}

func serveHTTP(addr string, eng *controller.Engine, ag *controller.Agent) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w (use --listen ADDR or --listen off)", addr, err)
	}
	srv := &http.Server{Addr: ln.Addr().String(), Handler: controller.Handler(eng, ag), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			eng.Log.Error("http server stopped", "err", err)
		}
	}()
	return srv, nil
}
