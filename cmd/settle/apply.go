package main

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"syscall"
	"time"

	"settle/controller"
	"settle/reconcilers"
	"settle/state"
)

func runApply(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("apply", "[-f FILE]", `Converges the machine to the desired file once: target color online and
healthy, then nginx switched and verified, then the standby color per
app.standby. Every action is journaled in the state dir. Afterwards the
machine is observed again; the plan must be empty. With agent.analysis_window
set, the new color's traffic is then judged (error rate, p99 latency); a
color that fails is held back and the last good generation served again.
Exit 0 converged, 1 failed (the error says which resource and why).`, stderr)
	file := fileFlag(fs)
	verbose := fs.Bool("v", false, "log debug detail")
	if done, code := parse(fs, args); done {
		return code
	}
	d, ok := load(*file, stderr)
	if !ok {
		return exitFail
	}
	lock, err := state.Acquire(d.Agent.StateDir)
	if err != nil {
		fmt.Fprintln(stderr, "settle apply:", err)
		return exitFail
	}
	defer lock.Release()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log := newLogger(stderr, *verbose)
	host, closeHost, err := hostFor(ctx, d)
	if err != nil {
		fmt.Fprintln(stderr, "settle apply:", err)
		return exitFail
	}
	defer closeHost()
	eng, err := controller.NewEngine(host, log, d.Agent.StateDir)
	if err != nil {
		fmt.Fprintln(stderr, "settle apply:", err)
		return exitFail
	}
	eng.Notify = notifier(d, log)
	defer eng.Notify.Close(10 * time.Second)
	res := eng.Converge(ctx, d)
	controller.WriteResult(stdout, res)
	if res.Err != nil {
		fmt.Fprintf(stderr, "settle apply: failed:\n%s\n", reconcilers.Redact(res.Err.Error()))
		return exitFail
	}
	if ok, why := eng.Analyze(ctx, d, res, nil); !ok {
		if _, err := eng.Hold(ctx, d, "failed analysis ("+why+")"); err != nil {
			fmt.Fprintln(stderr, "settle apply:", reconcilers.Redact(err.Error()))
		} else {
			fmt.Fprintln(stderr, "settle apply:", reconcilers.Redact(eng.Status().Message))
		}
		return exitFail
	}
	if !res.After.InSync() {
		fmt.Fprintln(stderr, "settle apply: not converged (report-only resources or unknown state); see above")
		return exitFail
	}
	return exitOK
}
