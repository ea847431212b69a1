package nginx

import (
	"reflect"
	"strings"
	"testing"

	"settle/desired"
	"settle/reconcilers"
)

func testDesired(active string) *desired.Desired {
	return &desired.Desired{
		Path: "/srv/desired.toml", Generation: strings.Repeat("ab", 32),
		App: desired.App{Name: "demo", Active: active,
			Blue:  desired.Color{Port: 3000},
			Green: desired.Color{Port: 3001}},
		Nginx: desired.Nginx{Upstream: "app", UpstreamFile: "/etc/nginx/conf.d/app.conf", VerifyURL: "http://127.0.0.1/api/health"},
	}
}

func TestParseUpstream(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		ok        bool
		servers   []string
	}{
		{"rendered", string(Render(testDesired("blue"))), true, []string{"127.0.0.1:3000"}},
		{"one line", "upstream app { server 127.0.0.1:3001; }", true, []string{"127.0.0.1:3001"}},
		{"two on one line", "upstream app {\n  server 127.0.0.1:3000; server 127.0.0.1:9;\n}", true, []string{"127.0.0.1:3000", "127.0.0.1:9"}},
		{"params", "upstream app {\n server 127.0.0.1:3000 max_fails=3 fail_timeout=5s;\n}", true, []string{"127.0.0.1:3000"}},
		{"commented out", "upstream app {\n # server 127.0.0.1:3001;\n server 127.0.0.1:3000;\n}", true, []string{"127.0.0.1:3000"}},
		{"other block only", "upstream other { server 127.0.0.1:3000; }", false, nil},
		{"empty", "", false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, ok := ParseUpstream([]byte(tc.src), "app")
			if ok != tc.ok || !reflect.DeepEqual(u.Servers, tc.servers) {
				t.Fatalf("got ok=%v servers=%v, want ok=%v servers=%v", ok, u.Servers, tc.ok, tc.servers)
			}
		})
	}
}

func ops(r reconcilers.Resource) []string {
	var out []string
	for _, a := range r.Actions {
		out = append(out, a.Op)
	}
	return out
}

var ok200 = reconcilers.Probe{Code: 200}

func TestPlan(t *testing.T) {
	blueFile := Render(testDesired("blue"))
	up := func(b []byte) Upstream { u, _ := ParseUpstream(b, "app"); return u }
	for _, tc := range []struct {
		name   string
		active string
		o      Observed
		status reconcilers.Status
		ops    []string
	}{
		{"in sync", "blue", Observed{File: blueFile, Upstream: up(blueFile), HasBlock: true, MasterPID: 1, Served: "blue", VerifyResp: ok200}, reconcilers.InSync, nil},
		{"file right but nginx answers 502: not in sync, nothing to rewrite", "blue",
			Observed{File: blueFile, Upstream: up(blueFile), HasBlock: true, MasterPID: 1, VerifyResp: reconcilers.Probe{Code: 502}}, reconcilers.Drifted, nil},
		{"switch", "green", Observed{File: blueFile, Upstream: up(blueFile), HasBlock: true, MasterPID: 1, Served: "blue"}, reconcilers.Drifted, []string{OpWrite, OpReload}},
		{"file missing", "blue", Observed{MasterPID: 1}, reconcilers.Drifted, []string{OpWrite, OpReload}},
		{"extra server by hand", "blue", Observed{File: []byte("x"), Upstream: Upstream{Name: "app", Servers: []string{"127.0.0.1:3000", "127.0.0.1:9"}}, HasBlock: true, MasterPID: 1}, reconcilers.Drifted, []string{OpWrite, OpReload}},
		{"file right, nginx serves the other color", "blue", Observed{File: blueFile, Upstream: up(blueFile), HasBlock: true, MasterPID: 1, Served: "green"}, reconcilers.Drifted, []string{OpReload}},
		{"served unknown is not drift", "blue", Observed{File: blueFile, Upstream: up(blueFile), HasBlock: true, MasterPID: 1, VerifyResp: ok200}, reconcilers.InSync, nil},
		{"no master", "green", Observed{File: blueFile, Upstream: up(blueFile), HasBlock: true, MasterErr: "nginx master not running"}, reconcilers.Failed, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Plan(testDesired(tc.active), &tc.o)
			if r.Status != tc.status || !reflect.DeepEqual(ops(r), tc.ops) {
				t.Fatalf("status %s ops %v, want %s %v (actual %q, reason %q)", r.Status, ops(r), tc.status, tc.ops, r.Actual, r.Reason)
			}
		})
	}
}

func TestRenderNamesGenerationAndPort(t *testing.T) {
	out := string(Render(testDesired("green")))
	for _, want := range []string{"upstream app {", "server 127.0.0.1:3001;", "generation abababababab", "active green"} {
		if !strings.Contains(out, want) {
			t.Errorf("rendered file lacks %q:\n%s", want, out)
		}
	}
}
