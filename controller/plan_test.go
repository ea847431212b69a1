package controller

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"settle/desired"
	"settle/reconcilers"
	"settle/reconcilers/nginx"
	"settle/reconcilers/pm2"
	"settle/reconcilers/postgres"
	redisrec "settle/reconcilers/redis"
)

func buildDesired(active, standby string) *desired.Desired {
	return &desired.Desired{App: desired.App{Name: "demo", Active: active, Standby: standby, StartTimeout: "60s",
		Blue:  desired.Color{Dir: "/b", Port: 3000, HealthURL: "http://127.0.0.1:3000/h"},
		Green: desired.Color{Dir: "/g", Port: 3001, HealthURL: "http://127.0.0.1:3001/h"}},
		Nginx: desired.Nginx{Upstream: "app", UpstreamFile: "/u.conf"}}
}

func online(name, dir string) pm2.Proc {
	return pm2.Proc{Name: name, Status: "online", Since: time.Now().Add(-time.Hour), Cwd: dir, MinUptime: time.Second,
		Health: reconcilers.Probe{Code: 200}}
}

func TestBuildOrdersAndGates(t *testing.T) {
	blueFile := []byte("upstream app { server 127.0.0.1:3000; }")
	u, _ := nginx.ParseUpstream(blueFile, "app")
	obs := func() observations {
		return observations{
			pm2:   &pm2.Observed{At: time.Now(), Procs: map[string]pm2.Proc{"demo-blue": online("demo-blue", "/b"), "demo-green": online("demo-green", "/g")}},
			nginx: &nginx.Observed{File: blueFile, Upstream: u, HasBlock: true, MasterPID: 1},
		}
	}
	t.Run("switch with standby stopped: target, nginx, then stop the old color", func(t *testing.T) {
		p := build(buildDesired("green", "stopped"), obs())
		var ids []string
		for _, r := range p.Resources {
			ids = append(ids, r.ID())
		}
		if want := []string{"pm2/demo-green", "nginx/app", "pm2/demo-blue"}; !reflect.DeepEqual(ids, want) {
			t.Fatalf("order %v, want %v", ids, want)
		}
		if got := p.Resources[1].After; !reflect.DeepEqual(got, []string{"pm2/demo-green"}) {
			t.Errorf("nginx waits for %v", got)
		}
		if got := p.Resources[2].After; !reflect.DeepEqual(got, []string{"nginx/app"}) {
			t.Errorf("stopping blue waits for %v, want nginx", got)
		}
	})
	t.Run("release dir of the serving color changed: refused, not replaced under traffic", func(t *testing.T) {
		d := buildDesired("blue", "running")
		d.App.Blue.Dir = "/b2"
		p := build(d, obs())
		if r := p.Resources[0]; r.Status != reconcilers.Failed || len(r.Actions) != 0 {
			t.Fatalf("serving color would be replaced: %+v", r)
		}
	})
	t.Run("release dir of the standby changed: replaced", func(t *testing.T) {
		d := buildDesired("blue", "running")
		d.App.Green.Dir = "/g2"
		p := build(d, obs())
		if r := p.Resources[len(p.Resources)-1]; r.Name != "demo-green" || !hasOp(r, pm2.OpReplace) {
			t.Fatalf("standby not replaced: %+v", r)
		}
	})
	t.Run("pm2 unreadable: both colors in error, nothing planned", func(t *testing.T) {
		o := obs()
		o.pm2, o.pm2Err = nil, errors.New("no PM2 daemon")
		p := build(buildDesired("green", "running"), o)
		if p.Resources[0].Status != reconcilers.Failed || !p.HasErrors() || p.InSync() {
			t.Fatalf("resources %+v", p.Resources)
		}
	})
}

func TestExecuteGates(t *testing.T) {
	target := reconcilers.Resource{Kind: "pm2", Name: "demo-green", Status: reconcilers.Drifted,
		Actions: []reconcilers.Action{{Kind: "pm2", Op: pm2.OpStart}, {Kind: "pm2", Op: pm2.OpWait}}}
	switchRes := reconcilers.Resource{Kind: "nginx", Name: "app", Status: reconcilers.Drifted, After: []string{"pm2/demo-green"},
		Actions: []reconcilers.Action{{Kind: "nginx", Op: nginx.OpWrite}, {Kind: "nginx", Op: nginx.OpReload}}}
	stopOld := reconcilers.Resource{Kind: "pm2", Name: "demo-blue", Status: reconcilers.Drifted, After: []string{"nginx/app"},
		Actions: []reconcilers.Action{{Kind: "pm2", Op: pm2.OpStop}}}
	unrelated := reconcilers.Resource{Kind: "redis", Name: "cache", Status: reconcilers.Drifted,
		Actions: []reconcilers.Action{{Kind: "redis", Op: "flush"}}}
	for _, tc := range []struct {
		name       string
		resources  []reconcilers.Resource
		failOp     string
		reportOnly string
		ran        []string
		errs       int
	}{
		{"all run in order", []reconcilers.Resource{target, switchRes, stopOld}, "", "",
			[]string{"start", "wait", "write", "reload", "stop"}, 0},
		{"target crashes: no switch, old color kept, unrelated still runs", []reconcilers.Resource{target, switchRes, stopOld, unrelated}, pm2.OpWait, "",
			[]string{"start", "wait", "flush"}, 3},
		{"nginx -t fails: old color not stopped", []reconcilers.Resource{target, switchRes, stopOld}, nginx.OpWrite, "",
			[]string{"start", "wait", "write"}, 2},
		{"report mode on pm2: nothing that waits for it runs", []reconcilers.Resource{target, switchRes, unrelated}, "", "pm2",
			[]string{"flush"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ran []string
			opt := ApplyOptions{ReportOnly: func(k string) bool { return k == tc.reportOnly }}
			_, errs := execute(context.Background(), &Plan{Resources: tc.resources}, opt,
				func(_ context.Context, a reconcilers.Action) (map[string]any, error) {
					ran = append(ran, a.Op)
					if a.Op == tc.failOp {
						return nil, errors.New("boom")
					}
					return nil, nil
				})
			if !reflect.DeepEqual(ran, tc.ran) {
				t.Errorf("ran %v, want %v", ran, tc.ran)
			}
			if n := len(errs.WrappedErrors()); n != tc.errs {
				t.Errorf("%d errors, want %d: %v", n, tc.errs, errs)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	p := &Plan{Resources: []reconcilers.Resource{
		{Kind: "nginx", Name: "app", Status: reconcilers.Drifted, Desired: "-> 3000"},
		{Kind: "pm2", Name: "demo-blue", Status: reconcilers.Drifted, Desired: "online"},
		{Kind: "pm2", Name: "demo-green", Status: reconcilers.InSync, Desired: "stopped"},
	}}
	Classify(p, map[string]string{"nginx/app": "-> 3000", "pm2/demo-blue": "stopped"})
	got := []string{p.Resources[0].Cause, p.Resources[1].Cause, p.Resources[2].Cause}
	if want := []string{"drift", "intended", ""}; !reflect.DeepEqual(got, want) {
		t.Fatalf("causes %v, want %v", got, want)
	}
}

func TestFirstSightOfACacheMarksWithoutFlushing(t *testing.T) {
	d := buildDesired("blue", "running")
	d.Postgres = &desired.Postgres{Database: "app", Snapshot: "s1", KeepReplaced: "168h"}
	d.Redis = &desired.Redis{Addr: "127.0.0.1:6379", FlushOnSnapshotChange: true}
	blueFile := []byte("upstream app { server 127.0.0.1:3000; }")
	u, _ := nginx.ParseUpstream(blueFile, "app")
	o := observations{
		pm2:   &pm2.Observed{At: time.Now(), Procs: map[string]pm2.Proc{"demo-blue": online("demo-blue", "/b"), "demo-green": online("demo-green", "/g")}},
		nginx: &nginx.Observed{File: blueFile, Upstream: u, HasBlock: true, MasterPID: 1},
		pg: &postgres.Observed{At: time.Now(), Live: postgres.DB{Name: "app", Exists: true, AllowConn: true,
			Marker: postgres.Marker{Role: postgres.RoleLive, Snapshot: "s1"}}},
		redis: &redisrec.Observed{Managed: true},
	}
	find := func(p *Plan) reconcilers.Resource {
		for _, r := range p.Resources {
			if r.Kind == redisrec.Kind {
				return r
			}
		}
		t.Fatal("no redis resource")
		return reconcilers.Resource{}
	}
	if r := find(build(d, o)); len(r.Actions) != 1 || r.Actions[0].Op != redisrec.OpMark {
		t.Fatalf("database already on the snapshot: want a mark, got %+v", r.Actions)
	}
	d.Postgres.Snapshot = "s2" // a real snapshot change: the cache must go
	o.pg.File = nil
	o.pg.FileErr = errors.New("missing")
	if r := find(build(d, o)); len(r.Actions) == 1 && r.Actions[0].Op == redisrec.OpMark {
		t.Fatalf("snapshot changing: the cache was only marked, not flushed")
	}
}

func TestNginxAnswering502IsNginxDriftOnlyWhenTheColorIsHealthy(t *testing.T) {
	d := buildDesired("blue", "running")
	d.Nginx.VerifyURL = "http://127.0.0.1:8080/api/health"
	blueFile := []byte("upstream app { server 127.0.0.1:3000; }")
	u, _ := nginx.ParseUpstream(blueFile, "app")
	for _, tc := range []struct {
		name         string
		blueHealthy  bool
		nginxDrifted bool
	}{
		{"color healthy, nginx 502: nginx is wrong", true, true},
		{"color down, nginx 502: pm2's drift, not nginx's", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			blue := online("demo-blue", "/b")
			if !tc.blueHealthy {
				blue.Health = reconcilers.Probe{Code: 502}
			}
			o := observations{
				pm2:   &pm2.Observed{At: time.Now(), Procs: map[string]pm2.Proc{"demo-blue": blue, "demo-green": online("demo-green", "/g")}},
				nginx: &nginx.Observed{File: blueFile, Upstream: u, HasBlock: true, MasterPID: 1, VerifyResp: reconcilers.Probe{Code: 502}},
			}
			for _, r := range build(d, o).Resources {
				if r.Kind == nginx.Kind && (r.Status == reconcilers.Drifted) != tc.nginxDrifted {
					t.Fatalf("nginx status %s, want drifted=%v (actual %q)", r.Status, tc.nginxDrifted, r.Actual)
				}
			}
		})
	}
}
