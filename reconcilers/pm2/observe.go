// Package pm2 reconciles the blue and green PM2 processes of the app.
package pm2

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"settle/desired"
	"settle/reconcilers"
)

// Proc is what settle reads of one PM2 process. The app's environment that
// jlist carries is never decoded, so it cannot be kept or printed.
type Proc struct {
	Name      string
	PMID      int
	PID       int
	Status    string // online, stopped, errored, launching, stopping, one-launch-status
	Since     time.Time
	Restarts  int
	Cwd       string
	ErrLog    string
	OutLog    string
	MinUptime time.Duration
	Health    reconcilers.Probe
}

// Observed is PM2's view of the app's two processes.
type Observed struct {
	At    time.Time
	Procs map[string]Proc // by process name; absent = not in PM2
	Dupes []string        // names PM2 lists more than once
}

// Reconciler drives PM2 under one PM2_HOME.
type Reconciler struct {
	Host reconcilers.Host
	D    *desired.Desired
}

func (r *Reconciler) env() []string { return []string{"PM2_HOME=" + r.D.PM2.Home} }

// ErrNoDaemon means no PM2 daemon runs under the configured PM2_HOME; settle
// will not start apps into a fresh, empty daemon of its own making.
var ErrNoDaemon = errors.New("no PM2 daemon")

// Observe lists the app's processes and probes each color's health URL.
func (r *Reconciler) Observe(ctx context.Context) (*Observed, error) {
	if err := r.daemonAlive(ctx); err != nil {
		return nil, err
	}
	var (
		wg     sync.WaitGroup
		probes [2]reconcilers.Probe
	)
	for i, c := range []string{desired.Blue, desired.Green} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			probes[i] = reconcilers.Get(ctx, r.Host, r.D.App.Color(c).HealthURL, 2*time.Second)
		}()
	}
	list, err := r.list(ctx)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	o := &Observed{At: time.Now(), Procs: map[string]Proc{}}
	for i, c := range []string{desired.Blue, desired.Green} {
		name := r.D.App.ProcessName(c)
		for _, p := range list {
			if p.Name != name {
				continue
			}
			if _, seen := o.Procs[name]; seen {
				o.Dupes = append(o.Dupes, name)
				continue
			}
			p.Health = probes[i]
			o.Procs[name] = p
		}
	}
	return o, nil
}

// daemonAlive checks PM2_HOME's pid file names a live process. `pm2 jlist`
// would otherwise start a new, empty daemon and report "no processes".
func (r *Reconciler) daemonAlive(ctx context.Context) error {
	pidFile := filepath.Join(r.D.PM2.Home, "pm2.pid")
	b, err := r.Host.ReadFile(ctx, pidFile)
	if err != nil {
		return fmt.Errorf("%w under PM2_HOME=%s (cannot read %s: %v); start it as the app's user (PM2_HOME=%s pm2 resurrect) or fix pm2.home",
			ErrNoDaemon, r.D.PM2.Home, pidFile, unwrapPath(err), r.D.PM2.Home)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return fmt.Errorf("%w under PM2_HOME=%s: %s does not hold a pid", ErrNoDaemon, r.D.PM2.Home, pidFile)
	}
	if _, err := r.Host.Run(ctx, reconcilers.Cmd{Argv: []string{"kill", "-0", strconv.Itoa(pid)}}); err != nil {
		return fmt.Errorf("%w under PM2_HOME=%s: pid %d from %s is not running; start it (PM2_HOME=%s pm2 resurrect) or fix pm2.home",
			ErrNoDaemon, r.D.PM2.Home, pid, pidFile, r.D.PM2.Home)
	}
	return nil
}

func unwrapPath(err error) error {
	var pe interface{ Unwrap() error }
	if errors.As(err, &pe) && pe.Unwrap() != nil {
		return pe.Unwrap()
	}
	return err
}

type jproc struct {
	Name string `json:"name"`
	PMID int    `json:"pm_id"`
	PID  int    `json:"pid"`
	Env  struct {
		Status    string  `json:"status"`
		Uptime    float64 `json:"pm_uptime"`
		Restarts  int     `json:"restart_time"`
		Cwd       string  `json:"pm_cwd"`
		ErrLog    string  `json:"pm_err_log_path"`
		OutLog    string  `json:"pm_out_log_path"`
		MinUptime any     `json:"min_uptime"`
	} `json:"pm2_env"`
}

// list reads the process list, over PM2's RPC socket when it answers, else
// through `pm2 jlist`.
func (r *Reconciler) list(ctx context.Context) ([]Proc, error) {
	if out, err := r.monitorData(ctx); err == nil {
		if procs, err := ParseJlist(out); err == nil {
			return procs, nil
		}
	}
	return r.jlist(ctx)
}

func (r *Reconciler) jlist(ctx context.Context) ([]Proc, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := r.Host.Run(ctx, reconcilers.Cmd{Argv: []string{r.D.PM2.Bin, "jlist"}, Env: r.env(), SecretStdout: true})
	if err != nil {
		return nil, fmt.Errorf("pm2 jlist: %w", err)
	}
	return ParseJlist(out)
}

// ParseJlist decodes `pm2 jlist` output. PM2 may print banners or update
// notices around the JSON; the array must still be found whole, or this is
// an error: unparseable output never means "no processes".
func ParseJlist(out []byte) ([]Proc, error) {
	var raw []jproc
	err := json.Unmarshal(bytes.TrimSpace(out), &raw)
	if err != nil {
		// Try the last line that opens an array; banners come first.
		lines := bytes.Split(out, []byte("\n"))
		for i := len(lines) - 1; i >= 0 && err != nil; i-- {
			if bytes.HasPrefix(bytes.TrimSpace(lines[i]), []byte("[")) {
				raw = nil
				err = json.Unmarshal(bytes.TrimSpace(bytes.Join(lines[i:], []byte("\n"))), &raw)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("pm2 jlist printed something that is not a process list (%d bytes); refusing to read it as \"no processes\"", len(out))
	}
	procs := make([]Proc, 0, len(raw))
	for _, j := range raw {
		p := Proc{Name: j.Name, PMID: j.PMID, PID: j.PID, Status: j.Env.Status, Restarts: j.Env.Restarts,
			Cwd: j.Env.Cwd, ErrLog: j.Env.ErrLog, OutLog: j.Env.OutLog, MinUptime: time.Second}
		if j.Env.Uptime > 0 {
			p.Since = time.UnixMilli(int64(j.Env.Uptime))
		}
		switch v := j.Env.MinUptime.(type) {
		case float64:
			p.MinUptime = time.Duration(v) * time.Millisecond
		case string:
			if d, err := time.ParseDuration(v); err == nil {
				p.MinUptime = d
			} else if n, err := strconv.Atoi(v); err == nil {
				p.MinUptime = time.Duration(n) * time.Millisecond
			}
		}
		procs = append(procs, p)
	}
	return procs, nil
}
