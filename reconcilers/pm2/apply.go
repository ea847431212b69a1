package pm2

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"settle/desired"
	"settle/reconcilers"
)

// Apply performs one action of this reconciler's plan.
func (r *Reconciler) Apply(ctx context.Context, a reconcilers.Action) error {
	color := a.Args["color"]
	name := r.D.App.ProcessName(color)
	rel := r.D.App.Color(color)
	switch a.Op {
	case OpStart:
		return r.start(ctx, name, rel)
	case OpRestart:
		return r.pm2(ctx, "", "restart", name)
	case OpReplace:
		if err := r.pm2(ctx, "", "delete", name); err != nil && !notFound(err) {
			return err
		}
		return r.start(ctx, name, rel)
	case OpStop:
		if err := r.pm2(ctx, "", "stop", name); err != nil && !notFound(err) {
			return err // stopping a process that is gone is success
		}
		return nil
	case OpWait:
		return r.waitHealthy(ctx, name, rel)
	}
	return fmt.Errorf("pm2: unknown action %q", a.Op)
}

func (r *Reconciler) start(ctx context.Context, name string, rel desired.Color) error {
	return r.pm2(ctx, rel.Dir, "start", rel.Ecosystem, "--only", name)
}

func (r *Reconciler) pm2(ctx context.Context, dir string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, r.D.StartTimeout()+10*time.Second)
	defer cancel()
	_, err := r.Host.Run(ctx, reconcilers.Cmd{Argv: append([]string{r.D.PM2.Bin}, args...), Dir: dir, Env: r.env()})
	return err
}

func notFound(err error) bool {
	var ce *reconcilers.CmdError
	return errors.As(err, &ce) && strings.Contains(strings.ToLower(ce.Tail), "not found")
}

// waitHealthy polls the health URL often (cheap) and PM2 now and then (a
// node process per call), until the process is online past its min uptime
// and healthy, or it crashed, or start_timeout ran out.
func (r *Reconciler) waitHealthy(ctx context.Context, name string, rel desired.Color) error {
	deadline := time.Now().Add(r.D.StartTimeout())
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	var (
		p        Proc
		havePM2  time.Time
		startRes = -1
	)
	for {
		if time.Since(havePM2) > time.Second || !p.Health.OK() && p.Status != "online" {
			list, err := r.list(ctx)
			if err != nil {
				return err
			}
			p = Proc{}
			for _, q := range list {
				if q.Name == name {
					p = q
				}
			}
			havePM2 = time.Now()
			if startRes < 0 {
				startRes = p.Restarts
			}
			switch {
			case p.Name == "":
				return fmt.Errorf("%s is not in PM2 any more", name)
			case p.Status == "errored" || p.Status == "stopped" || p.Restarts-startRes >= 2:
				return fmt.Errorf("%s crashed on start (status %s, %d restarts)%s", name, p.Status, p.Restarts, r.lastLogs(ctx, p))
			}
		}
		p.Health = reconcilers.Get(ctx, r.Host, rel.HealthURL, time.Second)
		if Healthy(p, time.Now()) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not healthy within start_timeout %s: %s; health %s%s",
				name, r.D.App.StartTimeout, Describe(p, true, time.Now()), p.Health, r.lastLogs(context.Background(), p))
		case <-reconcilers.Interrupted(ctx):
			return fmt.Errorf("stopped waiting for %s: the desired file changed (%s)", name, Describe(p, true, time.Now()))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// lastLogs is the tail of the process's error log, redacted, for messages.
func (r *Reconciler) lastLogs(ctx context.Context, p Proc) string {
	if p.ErrLog == "" {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	b, err := r.Host.ReadFile(ctx, p.ErrLog)
	if err != nil || len(b) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return "; last log lines: " + reconcilers.Redact(strings.Join(lines, " | "))
}
