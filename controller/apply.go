package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/go-multierror"

	"settle/desired"
	"settle/reconcilers"
	"settle/reconcilers/nginx"
)

// Recorder hears of every action before and after it runs; the journal is
// one. A crash between the two leaves a "begin" with no "end" to find later.
type Recorder interface {
	Begin(d *desired.Desired, a reconcilers.Action)
	End(d *desired.Desired, a reconcilers.Action, took time.Duration, err error, notes map[string]any)
}

// Outcome is what happened to one resource during an apply.
type Outcome struct {
	Resource string        `json:"resource"`
	Done     []string      `json:"done,omitempty"`
	Err      string        `json:"error,omitempty"`
	Skipped  string        `json:"skipped,omitempty"`
	Took     time.Duration `json:"took_ns"`
	// Notes are what the actions learned (see reconcilers.Note).
	Notes map[string]any `json:"notes,omitempty"`
	// Undone: nginx took the switch, it did not serve, and it was put back.
	Undone bool `json:"undone,omitempty"`
}

// Result of one apply: the plan run, each resource's outcome, and the plan
// computed afterwards, which must be empty.
type Result struct {
	Plan     *Plan
	Outcomes []Outcome
	After    *Plan
	Err      error
}

// ApplyOptions tunes one apply.
type ApplyOptions struct {
	Recorder Recorder
	// ReportOnly names resource kinds to leave alone (agent report mode).
	ReportOnly func(kind string) bool
}

// Apply runs p's actions in order. A resource whose dependency failed, was
// skipped or is in doubt does not run: traffic never moves toward a color
// that was not proven healthy. Then it observes again.
func Apply(ctx context.Context, h reconcilers.Host, p *Plan, opt ApplyOptions) *Result {
	res := &Result{Plan: p}
	sys := newSystems(h, p.Desired)
	var errs *multierror.Error
	res.Outcomes, errs = execute(ctx, p, opt, func(ctx context.Context, a reconcilers.Action) (map[string]any, error) {
		return run(ctx, sys, p.Desired, a, opt.Recorder)
	})
	res.After = Compute(ctx, h, p.Desired)
	if errs == nil && !res.After.InSync() {
		for _, r := range res.After.Resources {
			if r.Status != reconcilers.InSync && !skipped(res.Outcomes, r.ID()) {
				errs = multierror.Append(errs, fmt.Errorf("%s: not converged after apply: want %s, have %s", r.ID(), r.Desired, r.Actual))
			}
		}
	}
	if errs != nil {
		errs.ErrorFormat = listErrors
		res.Err = errs
	}
	return res
}

// execute runs the plan's resources in order through do, skipping what
// waits for a failed, skipped or doubtful resource.
func execute(ctx context.Context, p *Plan, opt ApplyOptions, do func(context.Context, reconcilers.Action) (map[string]any, error)) ([]Outcome, *multierror.Error) {
	var outs []Outcome
	var errs *multierror.Error
	blocked := map[string]string{} // resource ID -> why its dependents must not run
	for _, r := range p.Resources {
		out := Outcome{Resource: r.ID()}
		start := time.Now()
		switch {
		case r.Status == reconcilers.Failed || r.Status == reconcilers.Unknown:
			out.Err = r.Reason
			blocked[r.ID()] = "in doubt: " + r.Reason
		case blockedBy(r, blocked) != "":
			out.Skipped = "waits for " + blockedBy(r, blocked)
			blocked[r.ID()] = out.Skipped
			if len(r.Actions) > 0 {
				errs = multierror.Append(errs, fmt.Errorf("%s: not changed: %s", r.ID(), out.Skipped))
			}
		case len(r.Actions) > 0 && opt.ReportOnly != nil && opt.ReportOnly(r.Kind):
			out.Skipped = "report mode: drift reported, not repaired"
			blocked[r.ID()] = "report mode"
		default:
			for _, a := range r.Actions {
				notes, err := do(ctx, a)
				for k, v := range notes {
					if out.Notes == nil {
						out.Notes = map[string]any{}
					}
					out.Notes[k] = v
				}
				if err != nil {
					out.Undone = errors.Is(err, nginx.ErrSwitchUndone)
					out.Err = reconcilers.Redact(err.Error())
					blocked[r.ID()] = "failed"
					break
				}
				out.Done = append(out.Done, a.Detail)
			}
		}
		out.Took = time.Since(start)
		if out.Err != "" {
			errs = multierror.Append(errs, fmt.Errorf("%s: %s", r.ID(), out.Err))
		}
		outs = append(outs, out)
	}
	return outs, errs
}

func skipped(outs []Outcome, id string) bool {
	for _, o := range outs {
		if o.Resource == id && o.Skipped != "" {
			return true
		}
	}
	return false
}

func blockedBy(r reconcilers.Resource, blocked map[string]string) string {
	for _, dep := range r.After {
		if why, ok := blocked[dep]; ok {
			return dep + " (" + why + ")"
		}
	}
	return ""
}

func run(ctx context.Context, s *systems, d *desired.Desired, a reconcilers.Action, rec Recorder) (notes map[string]any, err error) {
	if rec != nil {
		rec.Begin(d, a)
	}
	start := time.Now()
	ctx, n := reconcilers.WithNotes(ctx)
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in %s %s: %v", a.Kind, a.Op, p)
		}
		notes = n.Map()
		if rec != nil {
			rec.End(d, a, time.Since(start), err, notes)
		}
	}()
	return nil, apply(ctx, s, a)
}

func apply(ctx context.Context, s *systems, a reconcilers.Action) error {
	switch a.Kind {
	case "pm2":
		return s.pm2.Apply(ctx, a)
	case "nginx":
		return s.nginx.Apply(ctx, a)
	case "postgres":
		if s.pg != nil {
			return s.pg.Apply(ctx, a)
		}
	case "redis":
		if s.redis != nil {
			return s.redis.Apply(ctx, a)
		}
	}
	return errors.New("no reconciler for kind " + a.Kind)
}

func listErrors(es []error) string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Undone reports whether res put a switch back (see nginx.ErrSwitchUndone).
func (res *Result) Undone() bool {
	for _, o := range res.Outcomes {
		if o.Undone {
			return true
		}
	}
	return false
}
