package controller

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"settle/desired"
	"settle/reconcilers"
	"settle/state"
)

// Backoff for a generation that failed to apply: it is retried, never in a
// hot loop, and a new generation is tried at once.
const (
	BackoffMin = 2 * time.Second
	BackoffMax = 5 * time.Minute
	// MaxQuiet bounds the debounce: a file rewritten continuously is still
	// read at least this often.
	MaxQuiet = time.Second
)

// Agent keeps the machine converged to a desired file. Every trigger (a
// file event, the resync tick, SIGHUP, POST /reconcile) only wakes the loop;
// each pass re-reads the file and the world.
type Agent struct {
	File   string
	Engine *Engine
	Log    *slog.Logger
	// Mode overrides the file's agent.mode when set (--mode).
	Mode string
	// Wake receives external triggers (SIGHUP, HTTP).
	Wake chan string

	good     *desired.Desired // last valid desired state
	badGen   string           // hash of the last invalid bytes, to log them once
	failures map[string]int   // generation -> consecutive failed applies
	held     string           // generation that failed analysis
	fallback *desired.Desired // what is served instead of the held one
	lastTry  time.Time        // of the last apply attempt, to rate-limit forced retries
	watcher  *fsnotify.Watcher
	stopping context.Context // ends on SIGTERM: cuts an analysis window short
	retryAt  time.Time
}

// NewAgent prepares an agent for file.
func NewAgent(file string, e *Engine, log *slog.Logger) *Agent {
	return &Agent{File: file, Engine: e, Log: log, Wake: make(chan string, 1), failures: map[string]int{}}
}

// Trigger wakes the loop without blocking; wakes coalesce.
func (a *Agent) Trigger(why string) {
	select {
	case a.Wake <- why:
	default:
	}
}

// Run watches and reconciles until ctx ends. A pass under way when ctx ends
// is finished first: stopping halfway through a switch is worse than late.
func (a *Agent) Run(ctx context.Context, first *desired.Desired) error {
	a.good = first
	a.recoverJournal(first)
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	defer w.Close()
	a.watcher, a.stopping = w, ctx
	dir := filepath.Dir(a.File)
	if err := w.Add(dir); err != nil {
		return fmt.Errorf("watch %s: %w", dir, err)
	}
	a.Engine.Journal.Append(state.Stamp(state.Entry{Event: state.EvAgentStart, Detail: "mode " + a.mode(first)}, first))
	a.Log.Info("agent started", "file", a.File, "generation", short(first.Generation), "mode", a.mode(first), "resync", first.Resync())
	a.pass(context.WithoutCancel(ctx), "start")

	resync := time.NewTimer(a.good.Resync())
	defer resync.Stop()
	var quiet, maxQuiet <-chan time.Time // debounce timers, nil when idle
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	for {
		why := ""
		select {
		case <-ctx.Done():
			a.Engine.Journal.Append(state.Stamp(state.Entry{Event: state.EvAgentStop}, a.good))
			a.Log.Info("agent stopped")
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("file watcher closed")
			}
			if !a.concerns(ev) {
				continue
			}
			if quiet == nil {
				maxQuiet = time.After(MaxQuiet)
			}
			quiet = time.After(a.good.Debounce())
			continue
		case err := <-w.Errors:
			a.Log.Warn("file watcher error; relying on resync", "err", err)
			continue
		case <-quiet:
		case <-maxQuiet:
		case why = <-a.Wake:
			a.Log.Info("woken", "by", why)
		case <-resync.C:
		case <-retry.C:
		}
		quiet, maxQuiet = nil, nil
		a.pass(context.WithoutCancel(ctx), why)
		resync.Reset(a.good.Resync())
		if !a.retryAt.IsZero() {
			retry.Reset(time.Until(a.retryAt))
		}
	}
}

// concerns filters directory events down to the desired file, its
// replacement by rename, and symlink swaps (config dirs like ..data).
func (a *Agent) concerns(ev fsnotify.Event) bool {
	base := filepath.Base(ev.Name)
	return base == filepath.Base(a.File) || strings.HasPrefix(base, "..")
}

// pass is one reconcile: read the file, converge to it or to the last
// good state, honour backoff.
func (a *Agent) pass(ctx context.Context, why string) {
	d, err := desired.Load(a.File)
	if err != nil {
		d = a.good // keep the last good state: repair drift toward it
		defer a.invalid(err)
	} else {
		a.badGen = ""
		a.good = d
	}
	switch {
	case d.Generation == a.held && a.fallback == nil:
		return // held with nothing better to serve: touch nothing until the file changes
	case d.Generation == a.held:
		d = a.fallback // held: not retried until the file changes
		defer a.Engine.MarkHeld(a.held, a.Engine.Status().Message)
	default:
		a.held, a.fallback = "", nil
	}
	// Backing off this generation; SIGHUP and POST /reconcile may force a
	// retry, but not more often than BackoffMin, so a cron poking the agent
	// cannot restart a long restore in a loop.
	if n := a.failures[d.Generation]; n > 0 && time.Now().Before(a.retryAt) && (why == "" || time.Since(a.lastTry) < BackoffMin) {
		return
	}
	a.lastTry = time.Now()
	t0 := time.Now()
	p := a.Engine.Observe(ctx, d)
	t1 := time.Now()
	// An edit while a color is still starting must not wait for it: the
	// wait gives up and the next pass acts on the new file.
	changed, stopWatch := a.interruptions()
	res := a.Engine.ConvergePlan(reconcilers.WithInterrupt(ctx, changed), d, p, a.reportOnly(d))
	stopWatch()
	a.Log.Debug("pass", "observe", t1.Sub(t0), "apply+verify", time.Since(t1))
	if res.Err != nil && res.Undone() {
		// Retrying would cut traffic off again for the verify timeout:
		// hold it like a generation that failed analysis.
		w, err := a.Engine.Hold(ctx, d, "was put back: the switch did not serve through nginx ("+errString(res.Err)+")")
		a.held, a.fallback = d.Generation, w
		if err != nil {
			a.Log.Error("hold", "err", errString(err))
		}
		return
	}
	if res.Err != nil {
		n := a.failures[d.Generation] + 1
		a.failures = map[string]int{d.Generation: n}
		wait := min(BackoffMin<<min(n-1, 10), BackoffMax)
		a.retryAt = time.Now().Add(wait)
		a.Log.Error("apply failed; will retry", "generation", short(d.Generation), "attempt", n, "retry_in", wait, "err", errString(res.Err))
		a.Engine.Update(func(s *state.Status) { s.NextRetry = a.retryAt.UTC() })
		return
	}
	if len(res.Outcomes) > 0 && res.After.InSync() {
		a.Log.Info("converged", "generation", short(d.Generation), "commit", d.Git.Short(), "active", d.App.Active)
	}
	interrupt, stop := a.interruptions()
	ok, why := a.Engine.Analyze(ctx, d, res, interrupt)
	stop()
	if !ok {
		w, err := a.Engine.Hold(ctx, d, "failed analysis ("+why+")")
		a.held, a.fallback = d.Generation, w
		if err != nil {
			a.Log.Error("hold", "err", errString(err))
		}
		return
	}
	a.failures, a.retryAt = map[string]int{}, time.Time{}
	a.Engine.Update(func(s *state.Status) { s.NextRetry = time.Time{} })
}

// invalid logs a rejected file once per distinct content and records it.
func (a *Agent) invalid(err error) {
	b, _ := os.ReadFile(a.File)
	key := fmt.Sprintf("%x", sha256.Sum256(b))
	msg := reconcilers.Redact(err.Error())
	a.Engine.Update(func(s *state.Status) {
		s.Phase, s.Message = "invalid", "desired file rejected; serving last good generation "+short(a.good.Generation)+": "+msg
	})
	if key == a.badGen {
		return
	}
	a.badGen = key
	for _, line := range strings.Split(msg, "\n") {
		a.Log.Error("desired file rejected; keeping last good state", "problem", line, "serving", short(a.good.Generation))
	}
	a.Engine.Journal.Append(state.Stamp(state.Entry{Event: state.EvInvalid, Error: msg}, a.good))
}

func (a *Agent) mode(d *desired.Desired) string {
	if a.Mode != "" {
		return a.Mode
	}
	return d.Agent.Mode
}

func (a *Agent) reportOnly(d *desired.Desired) func(kind string) bool {
	return func(kind string) bool {
		if a.Mode != "" {
			return a.Mode == desired.ModeReport
		}
		return d.ModeFor(kind) == desired.ModeReport
	}
}

// recoverJournal reports actions a crash cut short; the next pass observes
// what became of them and finishes the job.
func (a *Agent) recoverJournal(d *desired.Desired) {
	entries, err := state.ReadJournal(a.Engine.Dir)
	if err != nil {
		a.Log.Warn("cannot read journal", "err", err)
	}
	for _, e := range state.Interrupted(entries) {
		a.Log.Warn("an action was interrupted (crash?); observing to finish it", "resource", e.Kind+"/"+e.Resource, "op", e.Op, "began", e.Time)
		e.Detail = "began " + e.Time.Format(time.RFC3339) + ", never ended; resolved by observing: " + e.Detail
		e.Event, e.Time, e.Outcome = state.EvInterrupted, time.Time{}, "interrupted"
		a.Engine.Journal.Append(e)
	}
}

// interruptions returns a channel closed when the desired file changes, an
// external trigger arrives, or the agent is told to stop: an analysis
// window must never keep an operator's rollback edit waiting. What it
// consumes is handed back as a trigger, since passes are level-based.
func (a *Agent) interruptions() (<-chan struct{}, func()) {
	out, done := make(chan struct{}), make(chan struct{})
	if a.watcher == nil {
		return out, func() {}
	}
	go func() {
		defer close(out)
		for {
			select {
			case <-done:
				return
			case <-a.stopping.Done():
				return
			case why := <-a.Wake:
				a.Trigger(why)
				return
			case ev, ok := <-a.watcher.Events:
				if !ok || a.concerns(ev) {
					a.Trigger("desired file changed during analysis")
					return
				}
			}
		}
	}()
	var once sync.Once
	return out, func() { once.Do(func() { close(done) }) }
}
