package controller

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"settle/desired"
	"settle/notify"
	"settle/state"
	"settle/verify"
)

// Switched reports whether res moved traffic (nginx was rewritten).
func Switched(res *Result) bool {
	for _, o := range res.Outcomes {
		if strings.HasPrefix(o.Resource, "nginx/") && len(o.Done) > 0 {
			return true
		}
	}
	return false
}

// Analyze watches the new color's traffic through nginx for the analysis
// window after a switch, and judges it with the runbook's decision matrix
// (error rate and p99 latency). ok is true when the window is off, when
// nothing switched, or when the color passed. interrupt ends the window
// early; the traffic seen so far is still judged.
func (e *Engine) Analyze(ctx context.Context, d *desired.Desired, res *Result, interrupt <-chan struct{}) (ok bool, why string) {
	win := d.AnalysisWindow()
	if win <= 0 || res.Err != nil || !Switched(res) {
		return true, ""
	}
	since := time.Now()
	e.Log.Info("analysis window", "color", d.App.Active, "for", win)
	e.Update(func(s *state.Status) { s.Phase, s.Message = "analysing", "watching "+d.App.Active+" for "+win.String() })
	select {
	case <-ctx.Done():
		return true, ""
	case <-interrupt:
		e.Log.Info("analysis cut short: the file changed or settle was woken; judging what was seen")
	case <-time.After(win):
	}
	upstream := "127.0.0.1:" + strconv.Itoa(d.App.Color(d.App.Active).Port)
	hits, err := verify.ReadAccessLog(ctx, e.Host, e.accessLog(ctx, d), since, 0)
	if err != nil {
		e.Log.Warn("analysis: cannot read the access log; not judging", "err", errString(err))
		return true, ""
	}
	stats := verify.Window(hits, since, time.Time{}, upstream)
	ok, why = stats.Check(e.thresholds(d))
	check := verify.Traffic("analysis window "+win.String()+" on "+d.App.Active, stats, e.thresholds(d))
	outcome := "ok"
	if !ok {
		outcome = "failed"
	}
	e.Journal.Append(state.Stamp(state.Entry{Event: state.EvVerify, Outcome: outcome, Detail: check.Detail,
		Data: map[string]any{"checks": verify.Results{check}}}, d))
	return ok, why
}

// Hold falls back to the generation served before d, which failed (failure
// says how, e.g. "failed analysis (...)"), and says so everywhere. It
// returns the generation now served.
func (e *Engine) Hold(ctx context.Context, d *desired.Desired, failure string) (*desired.Desired, error) {
	// The last good generation: the one before d when d converged (and
	// then failed analysis), else the one still converged (d never did).
	st := e.Status()
	prev := st.Applied
	if prev.Generation == d.Generation {
		prev = st.Previous
	}
	msg := fmt.Sprintf("generation %s %s; ", short(d.Generation), failure)
	if prev.Generation == "" || prev.Generation == d.Generation {
		msg += "no earlier good generation to serve; fix or revert the file"
		e.held(d, msg)
		return nil, fmt.Errorf("%s", msg)
	}
	w, err := e.LoadGeneration(prev.Generation, d.Path)
	if err != nil {
		msg += "the last good generation cannot be read back (" + err.Error() + "); fix or revert the file"
		e.held(d, msg)
		return nil, fmt.Errorf("%s", msg)
	}
	msg += fmt.Sprintf("serving generation %s (active %s); fix or revert the file", short(w.Generation), w.App.Active)
	res := e.Converge(ctx, w)
	e.held(d, msg)
	if res.Err != nil {
		return w, fmt.Errorf("%s; but going back failed: %v", msg, res.Err)
	}
	return w, nil
}

func (e *Engine) held(d *desired.Desired, msg string) {
	e.Log.Error("generation held", "generation", short(d.Generation), "message", msg)
	e.Journal.Append(state.Stamp(state.Entry{Event: state.EvHeld, Outcome: "failed", Detail: msg}, d))
	e.notify(d, notify.Held, "HELD: "+msg)
	e.MarkHeld(d.Generation, msg)
}

// MarkHeld records in status that generation gen is held back.
func (e *Engine) MarkHeld(gen, msg string) {
	e.Update(func(s *state.Status) { s.Phase, s.Message, s.Held = "held", msg, gen })
}
