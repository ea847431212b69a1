package controller

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"strings"
	"sync"
	"time"

	"settle/desired"
	"settle/notify"
	"settle/reconcilers"
	"settle/state"
)

// Engine runs reconcile passes and keeps the journal and status.json. One
// engine serves the one-shot apply and the agent alike.
type Engine struct {
	Host    reconcilers.Host
	Log     *slog.Logger
	Journal *state.Journal
	Dir     string // state dir
	Notify  *notify.Notifier

	mu       sync.Mutex
	status   state.Status
	drifting bool   // inside a drift episode: notify once, not every resync
	failing  string // generation and error of the last failure notified: retries are not news
	captured string // generation forensics were last captured for: retries capture nothing new
}

// NewEngine opens the state dir's journal and picks up the last status.
func NewEngine(h reconcilers.Host, log *slog.Logger, dir string) (*Engine, error) {
	j, err := state.OpenJournal(dir)
	if err != nil {
		return nil, err
	}
	e := &Engine{Host: h, Log: log, Journal: j, Dir: dir}
	if st, err := state.ReadStatus(dir); err == nil {
		e.status = *st
	}
	e.status.PID = os.Getpid()
	e.status.StartedAt = time.Now().UTC()
	return e, nil
}

// Status returns a copy of the current status.
func (e *Engine) Status() state.Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.status
	// Deep enough that the caller may read it while passes go on.
	s.Resources = append([]state.ResourceStatus(nil), s.Resources...)
	s.Verification = append([]state.Check(nil), s.Verification...)
	s.AppliedWants = maps.Clone(s.AppliedWants)
	return s
}

// Update changes the status under the lock and writes it out.
func (e *Engine) Update(f func(s *state.Status)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f(&e.status)
	// Written under the lock, so an older status never lands after a newer.
	if err := state.WriteStatus(e.Dir, &e.status); err != nil {
		e.Log.Warn("cannot write status", "err", err)
	}
}

// Observe computes and classifies the plan for d, without acting.
func (e *Engine) Observe(ctx context.Context, d *desired.Desired) *Plan {
	p := Compute(ctx, e.Host, d)
	Classify(p, e.Status().AppliedWants)
	return p
}

// Converge observes, applies what differs, proves the result, and records
// everything.
func (e *Engine) Converge(ctx context.Context, d *desired.Desired) *Result {
	return e.ConvergePlan(ctx, d, e.Observe(ctx, d), nil)
}

// ConvergePlan applies p (observed for d), leaving alone the kinds
// reportOnly names: their drift is recorded, not repaired.
func (e *Engine) ConvergePlan(ctx context.Context, d *desired.Desired, p *Plan, reportOnly func(string) bool) (res *Result) {
	start := time.Now()
	defer func() {
		outcome := "in_sync"
		if res.Err != nil {
			outcome = "failed"
		} else if len(res.Outcomes) > 0 {
			outcome = "applied"
		} else if !res.After.InSync() {
			outcome = "drifted"
		}
		metricReconcile.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
		metricDrifted.Set(float64(res.After.outOfSync()))
	}()
	e.record(d, p)
	e.trackDrift(d, p)
	if p.InSync() {
		e.converged(d, p)
		return &Result{Plan: p, After: p}
	}
	if reportOnly == nil {
		reportOnly = func(string) bool { return false }
	}
	if onlyReported(p, reportOnly) {
		// Nothing to do that we are allowed to do: drift is reported, not fought.
		return &Result{Plan: p, After: p}
	}
	e.Journal.Append(state.Stamp(state.Entry{Event: state.EvApplyBegin, Detail: summarize(p)}, d))
	metricApplies.Inc()
	if why := e.rollback(d); why != "" {
		e.notify(d, notify.Rollback, "Rollback detected: "+why)
	}
	if e.failing == "" || !strings.HasPrefix(e.failing, d.Generation) {
		e.notify(d, notify.ApplyStarted, "Apply started: "+summarize(p))
	}
	for _, a := range p.Actions() {
		e.Log.Info("plan", "resource", a.Kind+"/"+a.Resource, "action", a.Detail)
	}
	e.Update(func(s *state.Status) { s.Phase = "applying" })
	applyStart := time.Now()
	// Forensics run beside the apply, not before it: nothing they read is
	// destroyed by the cut (logs are files, the replaced database is kept
	// and dumped afterwards), and a multi-megabyte log tail must not delay
	// a rollback. The apply's result waits for them.
	evidence := make(chan string, 1)
	if why := destructive(d, p, reportOnly); why != "" && e.captured != d.Generation {
		e.captured = d.Generation
		go func() { evidence <- e.captureForensics(ctx, d, p, why) }()
	} else {
		evidence <- ""
	}
	res = Apply(ctx, e.Host, p, ApplyOptions{Recorder: e.logRecorder(), ReportOnly: reportOnly})
	end := state.Stamp(state.Entry{Event: state.EvApplyEnd, DurationMS: float64(time.Since(applyStart).Microseconds()) / 1000, Outcome: "ok"}, d)
	if res.Err != nil {
		end.Outcome, end.Error = "failed", res.Err.Error()
	}
	e.Journal.Append(end)
	e.record(d, res.After)
	switch {
	case res.Err == nil && res.After.InSync():
		e.failing = ""
		e.converged(d, res.After)
		e.verifyAfter(ctx, d, applyStart)
		e.dumpReplaced(ctx, d, <-evidence, res)
		e.notify(d, notify.ApplySucceeded, fmt.Sprintf("Converged in %s: active %s%s", time.Since(start).Round(time.Millisecond), d.App.Active, snapNote(d)))
	case res.Err == nil && onlyReported(res.After, reportOnly):
		// Everything settle may do is done; the rest is report-mode drift,
		// already reported, and not a failure.
		<-evidence
		e.Log.Info("applied; drift on report-mode resources left alone", "generation", short(d.Generation))
		e.Update(func(s *state.Status) {
			s.Phase, s.LastError, s.Message = "drifted", "", "drift on report-mode resources is reported, not repaired"
		})
	default:
		<-evidence // captured even when the apply failed: that is when it matters most
		metricFailures.Inc()
		e.Update(func(s *state.Status) {
			s.Phase, s.LastError = "failed", errString(res.Err)
		})
		if key := d.Generation + errString(res.Err); key != e.failing {
			e.failing = key
			e.notify(d, notify.ApplyFailed, "Apply FAILED: "+errString(res.Err))
		}
	}
	return res
}

func (e *Engine) notify(d *desired.Desired, kind, text string) {
	host, _ := os.Hostname()
	e.Notify.Send(notify.Event{Kind: kind, Host: host, Generation: short(d.Generation), Commit: d.Git.Short(),
		Text: fmt.Sprintf("settle on %s, %s (generation %s, commit %s)", host, text, short(d.Generation), d.Git.Short())})
}

func snapNote(d *desired.Desired) string {
	if d.Postgres == nil {
		return ""
	}
	return ", snapshot " + d.Postgres.Snapshot
}

// trackDrift journals and notifies drift once per episode: an episode
// starts when a resource drifts behind settle's back and ends when the
// machine is back in sync.
func (e *Engine) trackDrift(d *desired.Desired, p *Plan) {
	var drifted []string
	for _, r := range p.Resources {
		if r.Cause == "drift" {
			drifted = append(drifted, r.ID()+": want "+r.Desired+", have "+r.Actual)
		}
	}
	e.mu.Lock()
	start := len(drifted) > 0 && !e.drifting
	e.drifting = len(drifted) > 0
	e.mu.Unlock()
	if !start {
		return
	}
	text := strings.Join(drifted, "; ")
	e.Log.Warn("drift detected", "resources", text)
	e.Journal.Append(state.Stamp(state.Entry{Event: state.EvDrift, Detail: text}, d))
	e.notify(d, notify.DriftDetected, "Drift detected: "+text)
}

// rollback says why d looks like a rollback: traffic going back to the
// color that served before the current one, or the database going back to
// the previous snapshot or one that sorts before the live one (IDs carry
// their date).
func (e *Engine) rollback(d *desired.Desired) string {
	st := e.Status()
	cur, prev := st.Applied, st.Previous
	var why []string
	if cur.Active != "" && d.App.Active != cur.Active && d.App.Active == prev.Active {
		why = append(why, "active "+cur.Active+" -> "+d.App.Active)
	}
	if d.Postgres != nil && cur.Snapshot != "" && d.Postgres.Snapshot != cur.Snapshot &&
		(d.Postgres.Snapshot == prev.Snapshot || d.Postgres.Snapshot < cur.Snapshot) {
		why = append(why, "snapshot "+cur.Snapshot+" -> "+d.Postgres.Snapshot)
	}
	return strings.Join(why, ", ")
}

func onlyReported(p *Plan, reportOnly func(string) bool) bool {
	for _, r := range p.Resources {
		if r.Status != reconcilers.InSync && !reportOnly(r.Kind) {
			return false
		}
	}
	return true
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return reconcilers.Redact(err.Error())
}

func summarize(p *Plan) string {
	s := ""
	for _, r := range p.Resources {
		if r.Status != reconcilers.InSync {
			if s != "" {
				s += "; "
			}
			s += r.ID() + ": " + r.Actual + " -> " + r.Desired
		}
	}
	return s
}

// record stores what was seen in status.
func (e *Engine) record(d *desired.Desired, p *Plan) {
	e.Update(func(s *state.Status) {
		s.File = d.Path
		s.Seen = genOf(d)
		// A fresh slice: copies handed out by Status share the old one.
		s.Resources = make([]state.ResourceStatus, 0, len(p.Resources))
		for _, r := range p.Resources {
			s.Resources = append(s.Resources, state.FromResource(r, p.ObservedAt))
		}
		if p.InSync() {
			s.Phase, s.Message = "converged", ""
		} else if s.Phase != "applying" {
			s.Phase = "drifted"
		}
	})
}

func (e *Engine) converged(d *desired.Desired, p *Plan) {
	setGeneration(d)
	e.keepGeneration(d)
	e.Update(func(s *state.Status) {
		if s.Applied.Generation != d.Generation {
			s.Previous, s.Applied = s.Applied, genOf(d)
		}
		s.Phase, s.LastError, s.Message, s.Held = "converged", "", "", ""
		s.AppliedWants = p.Wants()
	})
}

func genOf(d *desired.Desired) state.Gen {
	g := state.Gen{Generation: d.Generation, Commit: d.Git.Commit, Dirty: d.Git.Dirty, Active: d.App.Active, At: time.Now().UTC()}
	if d.Postgres != nil {
		g.Snapshot = d.Postgres.Snapshot
	}
	return g
}

// logRecorder journals and logs each action.
func (e *Engine) logRecorder() Recorder { return logRec{e} }

type logRec struct{ e *Engine }

func (l logRec) Begin(d *desired.Desired, a reconcilers.Action) {
	l.e.Journal.Begin(d, a)
}

func (l logRec) End(d *desired.Desired, a reconcilers.Action, took time.Duration, err error, notes map[string]any) {
	l.e.Journal.End(d, a, took, err, notes)
	if err != nil {
		l.e.Log.Error("action failed", "resource", a.Kind+"/"+a.Resource, "op", a.Op, "took", took.Round(time.Millisecond), "err", errString(err))
		return
	}
	l.e.Log.Info("action done", "resource", a.Kind+"/"+a.Resource, "op", a.Op, "took", took.Round(time.Millisecond))
}
