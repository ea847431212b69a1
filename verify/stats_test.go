package verify

import (
	"strings"
	"testing"
	"time"

	"settle/reconcilers"
)

func hitsOf(n, errs int, d time.Duration, up string) []Hit {
	var out []Hit
	for i := range n {
		h := Hit{Time: t0.Add(time.Duration(i) * time.Millisecond), Status: 200, Duration: d, Upstream: up}
		if i < errs {
			h.Status = 503
		}
		out = append(out, h)
	}
	return out
}

func TestWindow(t *testing.T) {
	var hits []Hit
	for i := 1; i <= 100; i++ {
		hits = append(hits, Hit{Time: t0.Add(time.Duration(i) * time.Second), Status: 200, Duration: time.Duration(i) * time.Millisecond, Upstream: "b"})
	}
	hits = append(hits, Hit{Time: t0.Add(50 * time.Second), Status: 500, Duration: time.Second, Upstream: "g"},
		Hit{Time: t0.Add(50 * time.Second), Status: 499, Duration: time.Second, Upstream: "g"})

	s := Window(hits, t0.Add(time.Second), t0.Add(101*time.Second), "b")
	if s.Requests != 100 || s.Errors != 0 || s.P50 != 50*time.Millisecond || s.P99 != 99*time.Millisecond {
		t.Errorf("upstream b: %+v", s)
	}
	// [from, to): the hit at to is out, the one at from is in.
	s = Window(hits, t0.Add(10*time.Second), t0.Add(20*time.Second), "b")
	if s.Requests != 10 || s.P50 != 14*time.Millisecond {
		t.Errorf("bounds: %+v, want 10 requests from 10s to 19s", s)
	}
	s = Window(hits, time.Time{}, time.Time{}, "")
	if s.Requests != 102 || s.Errors != 1 || s.ErrorRate != 1.0/102 || s.P99 != time.Second {
		t.Errorf("all: %+v", s)
	}
	if s := Window(hits, time.Time{}, time.Time{}, "nobody"); s.Requests != 0 || s.ErrorRate != 0 || s.P99 != 0 {
		t.Errorf("no traffic: %+v", s)
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name   string
		s      Stats
		th     Thresholds
		ok     bool
		phrase string
	}{
		{"healthy", Window(hitsOf(100, 0, 10*time.Millisecond, ""), time.Time{}, time.Time{}, ""), Thresholds{}, true, "100 requests"},
		{"error rate at the limit passes", Window(hitsOf(100, 25, time.Millisecond, ""), time.Time{}, time.Time{}, ""), Thresholds{}, true, "25.0%"},
		{"error rate over the limit fails", Window(hitsOf(100, 26, time.Millisecond, ""), time.Time{}, time.Time{}, ""), Thresholds{}, false, "error rate 26.0% > 25.0%"},
		{"latency at the limit passes", Window(hitsOf(10, 0, 5*time.Second, ""), time.Time{}, time.Time{}, ""), Thresholds{}, true, "p99 5s"},
		{"latency over the limit fails", Window(hitsOf(10, 0, 5*time.Second+time.Millisecond, ""), time.Time{}, time.Time{}, ""), Thresholds{}, false, "p99 5.001s > 5s"},
		{"both fail", Window(hitsOf(4, 2, 6*time.Second, ""), time.Time{}, time.Time{}, ""), Thresholds{}, false, "error rate 50.0% > 25.0%; p99 6s > 5s"},
		{"custom thresholds", Window(hitsOf(100, 5, time.Second, ""), time.Time{}, time.Time{}, ""), Thresholds{MaxErrorRate: 0.01, MaxLatency: 500 * time.Millisecond}, false, "error rate 5.0% > 1.0%; p99 1s > 500ms"},
		{"too little traffic", Window(hitsOf(9, 9, time.Minute, ""), time.Time{}, time.Time{}, ""), Thresholds{MinRequests: 10}, true, "not enough traffic to judge: 9 requests (need 10)"},
		{"exactly min requests is judged", Window(hitsOf(10, 10, time.Millisecond, ""), time.Time{}, time.Time{}, ""), Thresholds{MinRequests: 10}, false, "error rate 100.0%"},
		{"no traffic", Stats{}, Thresholds{}, true, "not enough traffic to judge: 0 requests"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, why := tt.s.Check(tt.th)
			if ok != tt.ok || !strings.Contains(why, tt.phrase) {
				t.Errorf("Check = %v, %q; want %v containing %q", ok, why, tt.ok, tt.phrase)
			}
			if c := Traffic("traffic", tt.s, tt.th); c.OK != tt.ok || c.Detail != why {
				t.Errorf("Traffic = %+v, want ok %v detail %q", c, tt.ok, why)
			}
		})
	}
}

func TestChecks(t *testing.T) {
	green := []byte(`{"status":"ok","color":"green"}`)
	tests := []struct {
		name   string
		c      Check
		ok     bool
		detail string
	}{
		{"healthy", ColorHealthy("green", reconcilers.Probe{Code: 200, Body: green, Took: 3 * time.Millisecond}), true, "HTTP 200 in 3ms"},
		{"healthy, no color in body", ColorHealthy("blue", reconcilers.Probe{Code: 200, Body: []byte("ok")}), true, "HTTP 200"},
		{"wrong color on the port", ColorHealthy("blue", reconcilers.Probe{Code: 200, Body: green}), false, "names green"},
		{"unhealthy", ColorHealthy("blue", reconcilers.Probe{Code: 503}), false, "HTTP 503"},
		{"nginx right", ThroughNginx("http://x/", "green", reconcilers.Probe{Code: 200, Body: green}), true, "answered by green"},
		{"nginx stale", ThroughNginx("http://x/", "blue", reconcilers.Probe{Code: 200, Body: green}), false, "answered by green, want blue"},
		{"nginx no color", ThroughNginx("http://x/", "blue", reconcilers.Probe{Code: 200}), false, "names no color"},
		{"nginx down", ThroughNginx("http://x/", "blue", reconcilers.Probe{Code: 502}), false, "HTTP 502"},
		{"rows match", RowCounts(map[string]int64{"a": 1, "b": 2}, map[string]int64{"b": 2, "a": 1}), true, "2 tables match"},
		{"rows differ", RowCounts(map[string]int64{"a": 1, "b": 2, "c": 3}, map[string]int64{"a": 1, "b": 5, "d": 0}),
			false, "3 of 3 tables differ: b: want 2, have 5; c: want 3, table missing; d: 0 rows, not in the manifest"},
		{"rows empty", RowCounts(nil, nil), true, "0 tables"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.c.OK != tt.ok || !strings.Contains(tt.c.Detail, tt.detail) {
				t.Errorf("%+v; want ok %v, detail containing %q", tt.c, tt.ok, tt.detail)
			}
		})
	}
}

func TestResults(t *testing.T) {
	reconcilers.AddSecret("canary-verify-0xdeadbeef")
	rs := Results{{Name: "a", OK: true}, {Name: "b", Detail: "dial postgres://u:canary-verify-0xdeadbeef@db"}}
	if rs.OK() || len(rs.Failed()) != 1 || rs[:1].OK() != true {
		t.Fatalf("OK/Failed wrong for %+v", rs)
	}
	if d := rs.Redacted()[1].Detail; strings.Contains(d, "canary") {
		t.Fatalf("Redacted left the secret: %q", d)
	}
	// As read back from a journal line.
	back, err := ResultsOf([]any{map[string]any{"name": "a", "ok": true, "detail": "x"}})
	if err != nil || len(back) != 1 || back[0] != (Check{Name: "a", OK: true, Detail: "x"}) {
		t.Fatalf("ResultsOf = %+v, %v", back, err)
	}
	if _, err := ResultsOf("not a list"); err == nil {
		t.Fatal("ResultsOf accepted a string")
	}
}
