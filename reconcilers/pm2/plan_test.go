package pm2

import (
	"reflect"
	"testing"
	"time"

	"settle/desired"
	"settle/reconcilers"
)

func testDesired(active, standby string) *desired.Desired {
	return &desired.Desired{App: desired.App{Name: "demo", Active: active, Standby: standby, StartTimeout: "60s",
		Blue:  desired.Color{Dir: "/srv/blue", Port: 3000, Ecosystem: "eco.js", HealthURL: "http://127.0.0.1:3000/h"},
		Green: desired.Color{Dir: "/srv/green", Port: 3001, Ecosystem: "eco.js", HealthURL: "http://127.0.0.1:3001/h"}}}
}

var now = time.Date(2026, 12, 3, 3, 0, 0, 0, time.UTC)

func proc(name, status string, age time.Duration, healthy bool, cwd string) Proc {
	p := Proc{Name: name, Status: status, Since: now.Add(-age), MinUptime: 2 * time.Second, Cwd: cwd}
	if healthy {
		p.Health = reconcilers.Probe{Code: 200}
	} else {
		p.Health = reconcilers.Probe{Code: 502}
	}
	return p
}

func TestPlan(t *testing.T) {
	blueOK := proc("demo-blue", "online", time.Hour, true, "/srv/blue")
	greenOK := proc("demo-green", "online", time.Hour, true, "/srv/green")
	for _, tc := range []struct {
		name            string
		active, standby string
		procs           []Proc
		blue, green     []string // ops per color
	}{
		{"nothing running", "blue", "running", nil, []string{OpStart, OpWait}, []string{OpStart}},
		{"in sync, standby running", "blue", "running", []Proc{blueOK, greenOK}, nil, nil},
		{"switch to green, both up", "green", "running", []Proc{blueOK, greenOK}, nil, nil},
		{"switch to green, standby stopped: green starts, blue stops", "green", "stopped",
			[]Proc{blueOK, proc("demo-green", "stopped", 0, false, "/srv/green")}, []string{OpStop}, []string{OpRestart, OpWait}},
		{"active just started: wait past min uptime", "blue", "stopped",
			[]Proc{proc("demo-blue", "online", time.Second, true, "/srv/blue")}, []string{OpWait}, nil},
		{"active errored", "blue", "stopped", []Proc{proc("demo-blue", "errored", 0, false, "/srv/blue")}, []string{OpRestart, OpWait}, nil},
		{"active online but unhealthy past start_timeout", "blue", "stopped",
			[]Proc{proc("demo-blue", "online", 2*time.Minute, false, "/srv/blue")}, []string{OpRestart, OpWait}, nil},
		{"active online, unhealthy, still starting: only wait", "blue", "stopped",
			[]Proc{proc("demo-blue", "online", 10*time.Second, false, "/srv/blue")}, []string{OpWait}, nil},
		{"release dir moved", "blue", "stopped", []Proc{proc("demo-blue", "online", time.Hour, true, "/srv/old")}, []string{OpReplace, OpWait}, nil},
		{"standby stopped and absent is in sync", "blue", "stopped", []Proc{blueOK}, nil, nil},
		{"standby running but stopped by hand", "blue", "running",
			[]Proc{blueOK, proc("demo-green", "stopped", 0, false, "/srv/green")}, nil, []string{OpRestart}},
		{"standby running but unhealthy past start_timeout: restarted, it is the rollback target", "blue", "running",
			[]Proc{blueOK, proc("demo-green", "online", 5*time.Minute, false, "/srv/green")}, nil, []string{OpRestart}},
		{"standby started by hand when it should be stopped", "blue", "stopped", []Proc{blueOK, greenOK}, nil, []string{OpStop}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := &Observed{At: now, Procs: map[string]Proc{}}
			for _, p := range tc.procs {
				o.Procs[p.Name] = p
			}
			rs := Plan(testDesired(tc.active, tc.standby), o)
			for i, want := range [][]string{tc.blue, tc.green} {
				var got []string
				for _, a := range rs[i].Actions {
					got = append(got, a.Op)
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s: ops %v, want %v (actual %q)", rs[i].Name, got, want, rs[i].Actual)
				}
				if (len(want) > 0) != (rs[i].Status == reconcilers.Drifted) {
					t.Errorf("%s: status %s with ops %v", rs[i].Name, rs[i].Status, got)
				}
			}
		})
	}
}

func TestParseJlist(t *testing.T) {
	good := `[{"name":"demo-blue","pm_id":0,"pid":42,"pm2_env":{"status":"online","pm_uptime":1764730800000,"restart_time":1,"pm_cwd":"/srv/blue","min_uptime":2000,"APP_SECRET":"canary-xyz","env":{"APP_SECRET":"canary-xyz"}}}]`
	for _, tc := range []struct {
		name string
		out  string
		n    int
		err  bool
	}{
		{"plain", good, 1, false},
		{"banner before", ">>>> In-memory PM2 is out-of-date, do:\n>>>> $ pm2 update\n" + good + "\n", 1, false},
		{"empty list", "[]", 0, false},
		{"nothing", "", 0, true},
		{"daemon spawn chatter", "[PM2] Spawning PM2 daemon with pm2_home=/x\n[PM2] PM2 Successfully daemonized\n", 0, true},
		{"truncated", good[:60], 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps, err := ParseJlist([]byte(tc.out))
			if (err != nil) != tc.err || len(ps) != tc.n {
				t.Fatalf("got %d procs, err %v; want %d, err %v", len(ps), err, tc.n, tc.err)
			}
			if err != nil && len(err.Error()) > 200 {
				t.Errorf("error carries the output: %v", err)
			}
			if tc.n == 1 && (ps[0].Name != "demo-blue" || ps[0].Status != "online" || ps[0].MinUptime != 2*time.Second || ps[0].Cwd != "/srv/blue") {
				t.Errorf("parsed %+v", ps[0])
			}
		})
	}
}

func TestAmpRoundTrip(t *testing.T) {
	msg := ampEncode([]byte(`j:{"args":[[]]}`), []byte("s:settle:1"))
	args, err := ampDecode(bufioReader(msg))
	if err != nil || len(args) != 2 || string(args[1]) != "s:settle:1" {
		t.Fatalf("decode: %q %v", args, err)
	}
}
