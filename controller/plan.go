// Package controller runs settle's loop: observe every managed system, plan
// the difference from the desired state, apply it in dependency order with
// health gates, then observe again to prove the plan is empty.
package controller

import (
	"context"
	"sync"
	"time"

	"settle/desired"
	"settle/reconcilers"
	"settle/reconcilers/nginx"
	"settle/reconcilers/pm2"
)

// Plan is the difference between one desired state and the machine, as
// resources in the order their actions must run.
type Plan struct {
	Desired    *desired.Desired
	Resources  []reconcilers.Resource
	ObservedAt time.Time
	Took       time.Duration
}

// InSync reports whether nothing needs doing and nothing is in doubt.
func (p *Plan) InSync() bool {
	for _, r := range p.Resources {
		if r.Status != reconcilers.InSync {
			return false
		}
	}
	return true
}

// Actions is every action of the plan, in order.
func (p *Plan) Actions() []reconcilers.Action {
	var out []reconcilers.Action
	for _, r := range p.Resources {
		out = append(out, r.Actions...)
	}
	return out
}

// systems is one pass's reconcilers, built from the desired state, since
// paths and names may change from one generation to the next.
type systems struct {
	pm2   *pm2.Reconciler
	nginx *nginx.Reconciler
}

func newSystems(h reconcilers.Host, d *desired.Desired) *systems {
	return &systems{pm2: &pm2.Reconciler{Host: h, D: d}, nginx: &nginx.Reconciler{Host: h, D: d}}
}

// observations is what one pass saw; a nil field with an error means that
// system could not be read.
type observations struct {
	pm2      *pm2.Observed
	pm2Err   error
	nginx    *nginx.Observed
	nginxErr error
}

// observe reads every system at once; they are independent.
func (s *systems) observe(ctx context.Context) observations {
	var o observations
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); o.pm2, o.pm2Err = s.pm2.Observe(ctx) }()
	go func() { defer wg.Done(); o.nginx, o.nginxErr = s.nginx.Observe(ctx) }()
	wg.Wait()
	return o
}

// Compute observes the machine and plans against d.
func Compute(ctx context.Context, h reconcilers.Host, d *desired.Desired) *Plan {
	start := time.Now()
	o := newSystems(h, d).observe(ctx)
	p := build(d, o)
	p.ObservedAt, p.Took = start, time.Since(start)
	return p
}

// build is the pure half of Compute: it orders the resources and wires the
// gates between them.
//
//	pm2/<active>  online and healthy      (while traffic still flows)
//	nginx         switch to active        after pm2/<active>
//	pm2/<standby> running or stopped      after nginx, so the color that
//	                                      served is never stopped first
func build(d *desired.Desired, o observations) *Plan {
	active, standby := d.App.Active, desired.Other(d.App.Active)
	var procs map[string]reconcilers.Resource
	if o.pm2Err != nil {
		procs = map[string]reconcilers.Resource{}
		for _, c := range []string{desired.Blue, desired.Green} {
			procs[c] = failed(pm2.Kind, d.App.ProcessName(c), string(pm2.WantFor(d, c)), o.pm2Err)
		}
	} else {
		rs := pm2.Plan(d, o.pm2)
		procs = map[string]reconcilers.Resource{desired.Blue: rs[0], desired.Green: rs[1]}
	}
	var ngx reconcilers.Resource
	if o.nginxErr != nil {
		ngx = failed(nginx.Kind, d.Nginx.Upstream, nginx.Want(d), o.nginxErr)
	} else {
		ngx = nginx.Plan(d, o.nginx)
	}
	a, s := procs[active], procs[standby]
	ngx.After = []string{a.ID()}
	if hasOp(s, pm2.OpStop) {
		s.After = []string{ngx.ID()}
	}
	return &Plan{Desired: d, Resources: []reconcilers.Resource{a, ngx, s}}
}

func failed(kind, name, want string, err error) reconcilers.Resource {
	return reconcilers.Resource{Kind: kind, Name: name, Status: reconcilers.Failed, Desired: want,
		Actual: "unknown", Reason: reconcilers.Redact(err.Error())}
}

func hasOp(r reconcilers.Resource, op string) bool {
	for _, a := range r.Actions {
		if a.Op == op {
			return true
		}
	}
	return false
}

// HasErrors reports whether some system could not be read or acted on.
func (p *Plan) HasErrors() bool {
	for _, r := range p.Resources {
		if r.Status == reconcilers.Failed {
			return true
		}
	}
	return false
}

// DriftOnly is p without the resources whose difference is intended.
func (p *Plan) DriftOnly() *Plan {
	q := *p
	q.Resources = nil
	for _, r := range p.Resources {
		if r.Cause == "drift" || r.Status == reconcilers.Failed {
			q.Resources = append(q.Resources, r)
		}
	}
	return &q
}
