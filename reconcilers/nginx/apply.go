package nginx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"settle/reconcilers"
)

// VerifyTimeout bounds how long a reload may take to show.
const VerifyTimeout = 10 * time.Second

// ErrSwitchUndone marks a switch nginx took but that did not serve from the
// new color, and that was put back: retrying it would only cut traffic off
// again, so the agent holds the generation instead.
var ErrSwitchUndone = errors.New("switch undone")

// Apply performs one action of this reconciler's plan.
func (r *Reconciler) Apply(ctx context.Context, a reconcilers.Action) error {
	switch a.Op {
	case OpWrite:
		return r.write(ctx)
	case OpReload:
		return r.reload(ctx)
	}
	return fmt.Errorf("nginx: unknown action %q", a.Op)
}

// write replaces the upstream file and tests the whole config; if nginx
// rejects it, the previous file goes back and nginx's own words are the error.
func (r *Reconciler) write(ctx context.Context) error {
	path := r.D.Nginx.UpstreamFile
	prev, err := r.Host.ReadFile(ctx, path)
	if err != nil && !reconcilers.IsNotExist(err) {
		return fmt.Errorf("read %s: %w", path, err)
	}
	next := Render(r.D)
	if prev != nil && bytes.Equal(prev, next) {
		return nil
	}
	r.prev, r.wrote = prev, true
	if err := r.Host.WriteFile(ctx, path, next, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := r.test(ctx); err != nil {
		var rerr error
		if prev != nil {
			rerr = r.Host.WriteFile(ctx, path, prev, 0o644)
		} else {
			rerr = r.Host.Remove(ctx, path)
		}
		if rerr != nil {
			return fmt.Errorf("nginx -t failed (%v) and restoring the previous %s failed too: %v", err, path, rerr)
		}
		return fmt.Errorf("nginx -t rejected the new upstream file; previous %s restored; nginx said: %w", path, err)
	}
	return nil
}

func (r *Reconciler) nginxArgs(extra ...string) []string {
	argv := []string{r.D.Nginx.Bin}
	if r.D.Nginx.Prefix != "" {
		argv = append(argv, "-p", r.D.Nginx.Prefix)
	}
	return append(append(argv, "-c", r.D.Nginx.Config), extra...)
}

func (r *Reconciler) test(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := r.Host.Run(ctx, reconcilers.Cmd{Argv: r.nginxArgs("-t", "-q")})
	return err
}

// reload signals the master and proves the reload happened: a reload can
// fail silently (a bad include after our test, a master that ignores HUP).
func (r *Reconciler) reload(ctx context.Context) error {
	// Test before signalling: a master that reloads a broken config keeps
	// the old one and only says so in its error log.
	if err := r.test(ctx); err != nil {
		return fmt.Errorf("nginx -t failed, not reloading: %w", err)
	}
	master, err := r.masterPID(ctx)
	if err != nil {
		return err
	}
	before, err := r.workers(ctx, master)
	if err != nil {
		return err
	}
	logPath := r.ErrorLog(ctx)
	logBefore, _ := r.Host.ReadFile(ctx, logPath)
	if _, err := r.Host.Run(ctx, reconcilers.Cmd{Argv: []string{"kill", "-HUP", strconv.Itoa(master)}}); err != nil {
		return fmt.Errorf("signal nginx master %d: %w", master, err)
	}
	ctx, cancel := context.WithTimeout(ctx, VerifyTimeout)
	defer cancel()
	// Done when new workers run and every old one has stopped accepting
	// (nginx retitles it "shutting down"): until then an old worker may
	// still take a new connection and serve the previous color.
	for {
		now, err := r.workers(ctx, master)
		if err != nil {
			return err
		}
		fresh, oldAccepting := 0, 0
		for pid, title := range now {
			switch {
			case !hasPID(before, pid):
				fresh++
			case !strings.Contains(title, "shutting down"):
				oldAccepting++
			}
		}
		if fresh > 0 && oldAccepting == 0 {
			break
		}
		if err := sleep(ctx, 5*time.Millisecond); err != nil {
			return fmt.Errorf("nginx master %d did not finish the reload within %s (%d new workers, %d old still accepting)%s",
				master, VerifyTimeout, fresh, oldAccepting, emergSince(r.readLog(logPath), len(logBefore)))
		}
	}
	if e := emergSince(r.readLog(logPath), len(logBefore)); e != "" {
		return r.undo(fmt.Errorf("nginx reloaded with errors%s", e))
	}
	if err := r.verify(ctx); err != nil {
		return r.undo(err)
	}
	return nil
}

// undo puts back the upstream file this apply replaced and reloads, after
// a switch that nginx took but that does not serve: traffic goes back to
// where it was, and the error says so.
func (r *Reconciler) undo(cause error) error {
	if !r.wrote || r.prev == nil {
		return cause
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r.wrote = false
	if err := r.Host.WriteFile(ctx, r.D.Nginx.UpstreamFile, r.prev, 0o644); err != nil {
		return fmt.Errorf("%w; putting the previous upstream file back failed too: %v", cause, err)
	}
	master, err := r.masterPID(ctx)
	if err == nil {
		_, err = r.Host.Run(ctx, reconcilers.Cmd{Argv: []string{"kill", "-HUP", strconv.Itoa(master)}})
	}
	if err != nil {
		return fmt.Errorf("%w; the previous upstream file is back but reloading it failed: %v", cause, err)
	}
	return fmt.Errorf("%w; switched back: the previous upstream file is restored and nginx reloaded (%w)", cause, ErrSwitchUndone)
}

func (r *Reconciler) readLog(path string) []byte {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	b, _ := r.Host.ReadFile(ctx, path)
	return b
}

// emergSince returns the [emerg]/[alert] lines written after offset.
func emergSince(log []byte, offset int) string {
	if offset > len(log) {
		offset = 0 // rotated
	}
	var bad []string
	for _, l := range strings.Split(string(log[offset:]), "\n") {
		if strings.Contains(l, "[emerg]") || strings.Contains(l, "[alert]") {
			bad = append(bad, strings.TrimSpace(l))
		}
	}
	if len(bad) == 0 {
		return ""
	}
	return ": " + reconcilers.Redact(strings.Join(bad, " | "))
}

// verify waits until a request through nginx reaches the active color.
func (r *Reconciler) verify(ctx context.Context) error {
	if r.D.Nginx.VerifyURL == "" {
		return nil
	}
	var last reconcilers.Probe
	for {
		last = reconcilers.Get(ctx, r.Host, r.D.Nginx.VerifyURL, 2*time.Second)
		served := ColorOf(last.Body)
		if last.OK() && (served == r.D.App.Active || served == "") {
			return nil
		}
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return fmt.Errorf("after reload, %s still does not answer from %s (last: %s, color %q)",
				r.D.Nginx.VerifyURL, r.D.App.Active, last, ColorOf(last.Body))
		}
	}
}

// workers maps each child of the master (workers, cache helpers) to its
// process title.
func (r *Reconciler) workers(ctx context.Context, master int) (map[int]string, error) {
	out, err := r.Host.Run(ctx, reconcilers.Cmd{Argv: []string{"ps", "-o", "pid=,args=", "--ppid", strconv.Itoa(master)}})
	if err != nil {
		// ps exits 1 when the master has no children: that is "no workers".
		if ce, ok := err.(*reconcilers.CmdError); ok && ce.ExitCode == 1 {
			return map[int]string{}, nil
		}
		return nil, fmt.Errorf("list nginx workers: %w", err)
	}
	set := map[int]string{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if pid, err := strconv.Atoi(f[0]); err == nil {
			set[pid] = strings.Join(f[1:], " ")
		}
	}
	return set, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func hasPID(m map[int]string, pid int) bool {
	_, ok := m[pid]
	return ok
}
