// Package controller runs settle's loop: observe every managed system, plan
// the difference from the desired state, apply it in dependency order with
// health gates, then observe again to prove the plan is empty.
package controller

import (
	"context"
	"fmt"
	"sync"
	"time"

	"settle/desired"
	"settle/reconcilers"
	"settle/reconcilers/nginx"
	"settle/reconcilers/pm2"
	"settle/reconcilers/postgres"
	"settle/reconcilers/redis"
)

// Plan is the difference between one desired state and the machine, as
// resources in the order their actions must run.
type Plan struct {
	Desired    *desired.Desired
	Resources  []reconcilers.Resource
	ObservedAt time.Time
	Took       time.Duration

	obs observations // what the plan was computed from: log paths, the served color
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
	pg    *postgres.Reconciler // nil without [postgres]
	redis *redis.Reconciler    // nil without [redis]
}

func newSystems(h reconcilers.Host, d *desired.Desired) *systems {
	s := &systems{pm2: &pm2.Reconciler{Host: h, D: d}, nginx: &nginx.Reconciler{Host: h, D: d}}
	if d.Postgres != nil {
		s.pg = &postgres.Reconciler{Host: h, D: d}
	}
	if d.Redis != nil {
		s.redis = &redis.Reconciler{Host: h, D: d}
	}
	return s
}

// observations is what one pass saw; a nil field with an error means that
// system could not be read.
type observations struct {
	pm2      *pm2.Observed
	pm2Err   error
	nginx    *nginx.Observed
	nginxErr error
	pg       *postgres.Observed
	pgErr    error
	redis    *redis.Observed
	redisErr error
}

// observe reads every system at once; they are independent.
func (s *systems) observe(ctx context.Context) observations {
	var o observations
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); o.pm2, o.pm2Err = s.pm2.Observe(ctx) }()
	go func() { defer wg.Done(); o.nginx, o.nginxErr = s.nginx.Observe(ctx) }()
	if s.pg != nil {
		wg.Add(1)
		go func() { defer wg.Done(); o.pg, o.pgErr = s.pg.Observe(ctx) }()
	}
	if s.redis != nil {
		wg.Add(1)
		go func() { defer wg.Done(); o.redis, o.redisErr = s.redis.Observe(ctx) }()
	}
	wg.Wait()
	return o
}

// Compute observes the machine and plans against d.
func Compute(ctx context.Context, h reconcilers.Host, d *desired.Desired) *Plan {
	start := time.Now()
	o := newSystems(h, d).observe(ctx)
	p := build(d, o)
	p.ObservedAt, p.Took, p.obs = start, time.Since(start), o
	return p
}

// build is the pure half of Compute: it orders the resources and wires the
// gates between them. Slow, safe work comes first while traffic flows; the
// cut runs back to back; cleanup comes last.
//
//	pm2/<active>   online and healthy       (traffic still on the old color)
//	postgres/<db>  restore, verify, swap    after pm2/<active>
//	redis/<addr>   flush, mark              after postgres
//	nginx          switch to active         after pm2/<active>, and the swap
//	pm2/<standby>  running or stopped       after nginx, so the color that
//	                                        served is never stopped first
//	postgres/<db> (kept)  drop expired kept databases, last
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
	if ngx.Status == reconcilers.Drifted && len(ngx.Actions) == 0 && !activeHealthy(d, o) {
		// nginx answers badly because the color behind it is down: that is
		// pm2's drift, already planned there, not nginx's.
		ngx.Status = reconcilers.InSync
	}
	if hasOp(a, pm2.OpReplace) && servedColor(d, o) == active {
		// Replacing the process nginx sends traffic to would take the site
		// down until the new release proves healthy, if it ever does.
		a.Status, a.Actions = reconcilers.Failed, nil
		a.Reason = fmt.Sprintf("%s serves traffic and its release dir changed; deploy into the other color (%s) and switch to it instead",
			a.Name, standby)
	}
	out := []reconcilers.Resource{a}
	ngx.After = []string{a.ID()}
	var cleanup []reconcilers.Resource

	if d.Postgres != nil {
		var pg reconcilers.Resource
		if o.pgErr != nil {
			pg = failed(postgres.Kind, d.Postgres.Database, "snapshot "+d.Postgres.Snapshot+" live", o.pgErr)
		} else {
			pg = postgres.Plan(d, o.pg)
		}
		pg, cleanup = splitKept(pg)
		pg.After = []string{a.ID()}
		out = append(out, pg)
		if hasOp(pg, postgres.OpSwap) {
			ngx.After = append(ngx.After, pg.ID())
		}
		if d.Redis != nil {
			out = append(out, planRedis(d, o, pg))
		}
	} else if d.Redis != nil {
		out = append(out, planRedis(d, o, reconcilers.Resource{}))
	}
	if hasOp(s, pm2.OpStop) {
		s.After = []string{ngx.ID()}
	}
	out = append(out, ngx, s)
	return &Plan{Desired: d, Resources: append(out, cleanup...)}
}

func planRedis(d *desired.Desired, o observations, pg reconcilers.Resource) reconcilers.Resource {
	var r reconcilers.Resource
	if o.redisErr != nil {
		r = failed(redis.Kind, redis.Name(d), "cache of snapshot "+redis.WantMarker(d), o.redisErr)
	} else {
		r = redis.Plan(d, o.redis)
	}
	if pg.Kind != "" {
		r.After = []string{pg.ID()}
	}
	if o.redis != nil && !o.redis.HasMarker && pg.Status == reconcilers.InSync && len(r.Actions) == 1 {
		// First sight of a cache beside a database that already holds the
		// wanted snapshot: it is that snapshot's cache. Mark it; flushing
		// would only log every user out.
		want := redis.WantMarker(d)
		r.Actions[0].Op = redis.OpMark
		r.Actions[0].Detail = fmt.Sprintf("SET NX %s %q (no flush: the database already holds that snapshot)", redis.MarkerKey(d), want)
	}
	return r
}

// splitKept moves drop-kept actions out of the database resource: dropping
// a large database takes time that must not sit between the swap and the
// nginx switch.
func splitKept(pg reconcilers.Resource) (reconcilers.Resource, []reconcilers.Resource) {
	var keep, drop []reconcilers.Action
	for _, a := range pg.Actions {
		if a.Op == postgres.OpDropKept {
			drop = append(drop, a)
		} else {
			keep = append(keep, a)
		}
	}
	if len(drop) == 0 {
		return pg, nil
	}
	pg.Actions = keep
	if len(keep) == 0 && pg.Status == reconcilers.Drifted {
		pg.Status = reconcilers.InSync
	}
	kept := reconcilers.Resource{Kind: postgres.Kind, Name: pg.Name + " (kept)", Status: reconcilers.Drifted,
		Desired: "kept databases dropped after keep_replaced", Actual: fmt.Sprintf("%d past retention", len(drop)),
		Actions: drop, After: []string{pg.ID()}}
	return pg, []reconcilers.Resource{kept}
}

// activeHealthy is the active color's own health probe, straight to its port.
func activeHealthy(d *desired.Desired, o observations) bool {
	if o.pm2 == nil {
		return false
	}
	p, ok := o.pm2.Procs[d.App.ProcessName(d.App.Active)]
	return ok && p.Health.OK()
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
