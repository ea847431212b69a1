//go:build e2e

package e2e_test

import (
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"settle/e2e/sandbox"
)

// drRun runs settle like settleRun, with extra environment (a webhook URL).
func drRun(t *testing.T, s *sandbox.Sandbox, env []string, args ...string) (int, string, string) {
	t.Helper()
	return settleRunEnv(t, s, env, args...)
}

// drStartAgent is startAgent with extra environment.
func drStartAgent(t *testing.T, s *sandbox.Sandbox, env []string, args ...string) *agentProc {
	t.Helper()
	cmd := exec.Command(settleBin, append([]string{"agent", "-f", s.DesiredPath, "--listen", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(append(os.Environ(), s.Env()...), env...)
	a := &agentProc{cmd: cmd, logs: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = a.logs, a.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(a.done) }()
	t.Cleanup(func() {
		a.stop()
		if t.Failed() {
			t.Logf("agent log:\n%s", a.logs.String())
		}
	})
	return a
}

// drAgentAddr is the agent's HTTP address, from its log.
func drAgentAddr(t *testing.T, a *agentProc) string {
	t.Helper()
	a.waitLog(t, `http listening" addr=127\.0\.0\.1:\d+`, 10*time.Second)
	m := regexp.MustCompile(`http listening" addr=(127\.0\.0\.1:\d+)`).FindStringSubmatch(a.logs.String())
	return m[1]
}

// drHook is a Slack-compatible webhook that records every POSTed body.
type drHook struct {
	srv    *httptest.Server
	URL    string // with a secret token in its path
	Token  string
	mu     sync.Mutex
	bodies []map[string]any
	raw    []string
	bad    []string // requests that were not a POST of a JSON object
}

func drNewHook(t *testing.T) *drHook {
	t.Helper()
	h := &drHook{Token: "T0KEN" + strings.ReplaceAll(time.Now().Format("150405.000000000"), ".", "x") + "hookcanary"}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		var v map[string]any
		if r.Method != http.MethodPost || json.Unmarshal(b, &v) != nil || !strings.Contains(r.URL.Path, h.Token) {
			h.bad = append(h.bad, r.Method+" "+r.URL.Path+" "+string(b))
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		h.bodies = append(h.bodies, v)
		h.raw = append(h.raw, string(b))
		w.Write([]byte("ok"))
	}))
	t.Cleanup(h.srv.Close)
	h.URL = h.srv.URL + "/services/" + h.Token + "/incoming"
	return h
}

func (h *drHook) env() []string { return []string{"SETTLE_WEBHOOK_URL=" + h.URL} }

// since returns the bodies received after the first n.
func (h *drHook) since(n int) []map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]map[string]any(nil), h.bodies[min(n, len(h.bodies)):]...)
}

func (h *drHook) len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.bodies)
}

func (h *drHook) all() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(h.raw, "\n") + strings.Join(h.bad, "\n")
}

func drKinds(bodies []map[string]any) []string {
	var out []string
	for _, b := range bodies {
		k, _ := b["kind"].(string)
		out = append(out, k)
	}
	return out
}

func drOfKind(bodies []map[string]any, kind string) []map[string]any {
	var out []map[string]any
	for _, b := range bodies {
		if b["kind"] == kind {
			out = append(out, b)
		}
	}
	return out
}

// waitKind waits until a body of kind arrived after the first n.
func (h *drHook) waitKind(t *testing.T, n int, kind string, d time.Duration) map[string]any {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if got := drOfKind(h.since(n), kind); len(got) > 0 {
			return got[0]
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no %s notification within %s; got %v", kind, d, drKinds(h.since(n)))
	return nil
}

// drStatus reads status.json.
func drStatus(t *testing.T, s *sandbox.Sandbox) map[string]any {
	t.Helper()
	var v map[string]any
	b := mustRead(t, filepath.Join(s.StateDir, "status.json"))
	if err := json.Unmarshal([]byte(b), &v); err != nil {
		t.Fatalf("status.json: %v\n%s", err, b)
	}
	return v
}

// drResource finds kind/name among a plan's or a status's resources.
func drResource(v map[string]any, id string) map[string]any {
	rs, _ := v["resources"].([]any)
	for _, r := range rs {
		m, _ := r.(map[string]any)
		if m != nil && m["kind"].(string)+"/"+m["name"].(string) == id {
			return m
		}
	}
	return nil
}

// drOutOfSync lists the IDs of the resources not in sync.
func drOutOfSync(v map[string]any) []string {
	var out []string
	rs, _ := v["resources"].([]any)
	for _, r := range rs {
		m := r.(map[string]any)
		if m["status"] != "in_sync" {
			out = append(out, m["kind"].(string)+"/"+m["name"].(string))
		}
	}
	return out
}

// drUpstreamTo rewrites the upstream file by hand to port and reloads nginx.
func drUpstreamTo(t *testing.T, s *sandbox.Sandbox, port int) {
	t.Helper()
	if err := os.WriteFile(s.UpstreamFile, []byte("upstream app_upstream { server 127.0.0.1:"+itoa(port)+"; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	reloadNginx(t, s)
}

func drPM2(t *testing.T, s *sandbox.Sandbox, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "pm2", args...)
	cmd.Env = append(os.Environ(), "PM2_HOME="+s.PM2Home)
	// Output not printed: pm2 may echo the app's env, which holds secrets.
	if err := cmd.Run(); err != nil {
		t.Fatalf("pm2 %s: %v", strings.Join(args, " "), err)
	}
}

// drMarkdownRow is the table row of the markdown plan naming id.
func drMarkdownRow(md, id string) string {
	for _, l := range strings.Split(md, "\n") {
		if strings.HasPrefix(l, "| `"+id+"` |") {
			return l
		}
	}
	return ""
}

// TestDriftReportedInEveryFormat makes drift by hand in each system after a
// first apply, and checks that plan (text, json, markdown) and drift name
// the resource, its desired and actual values, and the cause "drift".
func TestDriftReportedInEveryFormat(t *testing.T) {
	s := sandbox.Start(t)
	mustApply(t, s)
	ctx := ctxT(t)
	redisID := "redis/" + s.RedisAddr + "/0"
	blue, green := itoa(s.BluePort), itoa(s.GreenPort)

	cases := []struct {
		name            string
		drift           func(t *testing.T)
		repair          func(t *testing.T)
		id, status      string
		desired, actual string
	}{
		{
			name:    "upstream file points at green",
			drift:   func(t *testing.T) { drUpstreamTo(t, s, s.GreenPort) },
			repair:  func(t *testing.T) { mustApply(t, s); waitFront(t, s, "blue", 5*time.Second) },
			id:      "nginx/app_upstream",
			status:  "drifted",
			desired: "upstream app_upstream -> 127.0.0.1:" + blue + " (blue)",
			actual:  "upstream app_upstream -> 127.0.0.1:" + green,
		},
		{
			name:    "active process stopped",
			drift:   func(t *testing.T) { drPM2(t, s, "stop", "demo-blue") },
			repair:  func(t *testing.T) { mustApply(t, s) },
			id:      "pm2/demo-blue",
			status:  "drifted",
			desired: "online and healthy",
			actual:  "stopped",
		},
		{
			name:    "redis cache marker changed",
			drift:   func(t *testing.T) { drRedisSet(t, ctx, s, "settle:snapshot", "other") },
			repair:  func(t *testing.T) { mustApply(t, s) },
			id:      redisID,
			status:  "drifted",
			desired: "cache of snapshot demo_initial serial=0",
			actual:  "cache of snapshot other",
		},
		{
			// Someone replaced the database by hand (restored a dump of
			// their own, or ran CREATE DATABASE ... over it): settle's
			// marker is gone, so it cannot tell what the database holds.
			// That is "unknown", cause drift, and it is never restored over
			// by surprise: adopt is the repair.
			name:  "database replaced by hand (marker gone)",
			drift: func(t *testing.T) { pgExec(t, ctx, s.AdminDSN, "COMMENT ON DATABASE demo IS NULL") },
			repair: func(t *testing.T) {
				if code, out, errOut := settleRun(t, s, "snapshot", "adopt", "-f", s.DesiredPath, "demo_initial"); code != 0 {
					t.Fatalf("snapshot adopt: exit %d\n%s%s", code, out, errOut)
				}
			},
			id:      "postgres/demo",
			status:  "unknown",
			desired: "snapshot demo_initial (serial 0) live",
			actual:  "no settle marker",
		},
		{
			// Last: it changes the desired file (standby stopped).
			name: "standby started while it should be stopped",
			drift: func(t *testing.T) {
				editDesired(t, s, "inplace", `standby = "running"`, `standby = "stopped"`)
				mustApply(t, s)
				if code, _ := httpGet(healthURL(s.GreenPort)); code == 200 {
					t.Fatalf("green still answers after apply with standby stopped")
				}
				drPM2(t, s, "restart", "demo-green")
				for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
					if code, _ := httpGet(healthURL(s.GreenPort)); code == 200 {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("green not started by pm2 restart")
					}
				}
			},
			repair:  func(t *testing.T) { mustApply(t, s) },
			id:      "pm2/demo-green",
			status:  "drifted",
			desired: "stopped",
			actual:  "online",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if code, out, _ := settleRun(t, s, "drift", "-f", s.DesiredPath); code != 0 {
				t.Fatalf("drift before the hand edit: exit %d, want 0\n%s", code, out)
			}
			c.drift(t)

			// text
			code, out, errOut := settleRun(t, s, "plan", "-f", s.DesiredPath, "--format", "text")
			if code != 2 {
				t.Fatalf("plan text: exit %d, want 2\n%s%s", code, out, errOut)
			}
			for _, want := range []string{c.id + ": " + c.status + " (drift)", "desired: " + c.desired, c.actual} {
				if !strings.Contains(out, want) {
					t.Errorf("plan text lacks %q:\n%s", want, out)
				}
			}

			// json
			code, plan := planJSON(t, s)
			if code != 2 || plan["in_sync"] != false {
				t.Fatalf("plan json: exit %d, in_sync %v; want 2 and false", code, plan["in_sync"])
			}
			if got := drOutOfSync(plan); len(got) != 1 || got[0] != c.id {
				t.Errorf("plan json: out of sync %v, want only %s", got, c.id)
			}
			r := drResource(plan, c.id)
			if r == nil {
				t.Fatalf("plan json has no %s: %v", c.id, plan)
			}
			if r["status"] != c.status || r["cause"] != "drift" || r["desired"] != c.desired ||
				!strings.Contains(r["actual"].(string), c.actual) {
				t.Errorf("plan json %s: status %v cause %v desired %q actual %q; want %s, drift, %q, containing %q",
					c.id, r["status"], r["cause"], r["desired"], r["actual"], c.status, c.desired, c.actual)
			}
			if c.status == "unknown" && !strings.Contains(r["reason"].(string), "settle snapshot adopt") {
				t.Errorf("unknown %s does not say how to adopt: %q", c.id, r["reason"])
			}

			// markdown
			code, md, errOut := settleRun(t, s, "plan", "-f", s.DesiredPath, "--format", "markdown")
			if code != 2 {
				t.Fatalf("plan markdown: exit %d, want 2\n%s%s", code, md, errOut)
			}
			row := drMarkdownRow(md, c.id)
			for _, want := range []string{c.status + " (drift)", c.desired, c.actual} {
				if !strings.Contains(row, want) {
					t.Errorf("plan markdown row for %s lacks %q: %q\n%s", c.id, want, row, md)
				}
			}

			// drift, in every format: only the drifted resource.
			code, out, errOut = settleRun(t, s, "drift", "-f", s.DesiredPath)
			if code != 2 || !strings.Contains(out, c.id+": "+c.status+" (drift)") || !strings.Contains(out, c.desired) {
				t.Errorf("drift text: exit %d, want 2 naming %s:\n%s%s", code, c.id, out, errOut)
			}
			code, out, errOut = settleRun(t, s, "drift", "-f", s.DesiredPath, "--format", "json")
			var dj map[string]any
			if err := json.Unmarshal([]byte(out), &dj); err != nil || code != 2 {
				t.Fatalf("drift json: exit %d, %v\n%s%s", code, err, out, errOut)
			}
			if rs, _ := dj["resources"].([]any); len(rs) != 1 || drResource(dj, c.id) == nil || drResource(dj, c.id)["cause"] != "drift" {
				t.Errorf("drift json: want exactly %s with cause drift: %s", c.id, out)
			}
			code, out, _ = settleRun(t, s, "drift", "-f", s.DesiredPath, "--format", "markdown")
			if row := drMarkdownRow(out, c.id); code != 2 || !strings.Contains(row, "(drift)") || !strings.Contains(row, c.actual) {
				t.Errorf("drift markdown: exit %d, row %q\n%s", code, row, out)
			}

			c.repair(t)
			if code, out, errOut := settleRun(t, s, "drift", "-f", s.DesiredPath); code != 0 {
				t.Fatalf("drift after repair: exit %d, want 0\n%s%s", code, out, errOut)
			}
		})
	}
}

func drRedisSet(t *testing.T, ctx context.Context, s *sandbox.Sandbox, key, val string) {
	t.Helper()
	if _, err := sandbox.RedisCommand(ctx, s.RedisAddr, s.RedisPassword, "SET", key, val); err != nil {
		t.Fatalf("redis SET: %v", err)
	}
}

// drStillFor fails the test unless cond stays true for d.
func drStillFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if !cond() {
			t.Fatalf("%s stopped holding within %s", what, d)
		}
	}
}

// drWithin waits for cond, failing after d; it returns how long it took.
func drWithin(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

func drUpstreamPort(t *testing.T, s *sandbox.Sandbox, port int) bool {
	return strings.Contains(mustRead(t, s.UpstreamFile), "127.0.0.1:"+itoa(port)+";")
}

func drHealthy(port int) bool {
	code, _ := httpGet(healthURL(port))
	return code == 200
}

// TestDriftReportModeChangesNothing: an agent in report mode records drift
// and repairs nothing, however many resyncs pass; an agent in enforce mode
// repairs the same drift within a resync or two.
func TestDriftReportModeChangesNothing(t *testing.T) {
	s := sandbox.Start(t)
	editDesired(t, s, "inplace", `(?m)^\[agent\]`, "[agent]\nresync = \"1s\"")
	mustApply(t, s)
	ag := startAgent(t, s, "--mode", "report")
	ag.waitLog(t, "agent started.*mode=report", 10*time.Second)

	drUpstreamTo(t, s, s.GreenPort)
	waitFront(t, s, "green", 5*time.Second)
	drPM2(t, s, "stop", "demo-blue")
	ag.waitLog(t, "drift detected", 5*time.Second)

	// Several resyncs pass; nothing is touched.
	drStillFor(t, 4*time.Second, "report mode leaving the drift alone", func() bool {
		return drUpstreamPort(t, s, s.GreenPort) && !drHealthy(s.BluePort) && frontColor(s) == "green"
	})
	st := drStatus(t, s)
	if st["phase"] != "drifted" || st["mode"] != "report" {
		t.Errorf("status.json: phase %v mode %v, want drifted and report", st["phase"], st["mode"])
	}
	for _, id := range []string{"nginx/app_upstream", "pm2/demo-blue"} {
		if r := drResource(st, id); r == nil || r["status"] == "in_sync" || r["cause"] != "drift" {
			t.Errorf("status.json does not show %s drifted (cause drift): %v", id, r)
		}
	}
	code, out, errOut := settleRun(t, s, "status", "-f", s.DesiredPath)
	if code != 0 || !strings.Contains(out, "phase:     drifted") || !regexp.MustCompile(`nginx\s+app_upstream\s+drifted`).MatchString(out) ||
		!regexp.MustCompile(`pm2\s+demo-blue\s+drifted\s+stopped`).MatchString(out) {
		t.Errorf("settle status: exit %d\n%s%s", code, out, errOut)
	}
	if n := strings.Count(ag.logs.String(), "drift detected"); n != 1 {
		t.Errorf("report mode logged %d drift episodes for one drift, want 1", n)
	}
	if strings.Contains(ag.logs.String(), "action done") {
		t.Errorf("report mode ran actions:\n%s", ag.logs.String())
	}
	ag.stop()

	// Enforce: the same drift is repaired as soon as the agent looks.
	ag2 := startAgent(t, s)
	ag2.waitLog(t, "agent started.*mode=enforce", 10*time.Second)
	took := drWithin(t, 15*time.Second, "enforce repairs the stopped blue and the upstream", func() bool {
		return drUpstreamPort(t, s, s.BluePort) && drHealthy(s.BluePort) && frontColor(s) == "blue"
	})
	t.Logf("enforce repaired the drift left by report mode in %s", took.Round(time.Millisecond))
	ag2.waitLog(t, "converged", 5*time.Second)

	// And drift made while it runs is repaired within a resync or two.
	time.Sleep(1500 * time.Millisecond)
	drUpstreamTo(t, s, s.GreenPort)
	took = drWithin(t, 2*time.Second+3*time.Second, "enforce repairs the upstream edit", func() bool {
		return drUpstreamPort(t, s, s.BluePort)
	})
	t.Logf("upstream edit repaired in %s (resync 1s)", took.Round(time.Millisecond))
	waitFront(t, s, "blue", 5*time.Second)
	drPM2(t, s, "stop", "demo-blue")
	took = drWithin(t, 2*time.Second+8*time.Second, "enforce restarts the stopped blue", func() bool {
		return drHealthy(s.BluePort)
	})
	t.Logf("stopped blue back online in %s (resync 1s, min uptime 2s)", took.Round(time.Millisecond))
	drWithin(t, 10*time.Second, "status converged", func() bool { return drStatus(t, s)["phase"] == "converged" })
}

// TestDriftReportModePerResource: [agent.modes] nginx = "report" leaves the
// nginx drift alone while the agent still repairs PM2.
func TestDriftReportModePerResource(t *testing.T) {
	s := sandbox.Start(t)
	editDesired(t, s, "inplace", `(?m)^\[agent\]`, "[agent]\nresync = \"1s\"")
	b, _ := os.ReadFile(s.DesiredPath)
	if err := os.WriteFile(s.DesiredPath, append(b, "\n[agent.modes]\nnginx = \"report\"\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	mustApply(t, s)
	hook := drNewHook(t)
	ag := drStartAgent(t, s, hook.env())
	ag.waitLog(t, "agent started", 10*time.Second)

	drUpstreamTo(t, s, s.GreenPort)
	waitFront(t, s, "green", 5*time.Second)
	drPM2(t, s, "stop", "demo-blue")

	// Every phase status.json goes through while pm2 is repaired and
	// nginx's drift is left alone.
	phases := map[string]bool{}
	sample := func() {
		if b, err := os.ReadFile(filepath.Join(s.StateDir, "status.json")); err == nil {
			var v struct {
				Phase     string
				LastError string `json:"last_error"`
			}
			if json.Unmarshal(b, &v) == nil {
				phases[v.Phase+" "+v.LastError] = true
			}
		}
	}
	drWithin(t, 12*time.Second, "pm2 (enforced) repairs the stopped blue", func() bool { sample(); return drHealthy(s.BluePort) })
	drStillFor(t, 4*time.Second, "nginx (report) left pointing at green", func() bool {
		sample()
		return drUpstreamPort(t, s, s.GreenPort) && frontColor(s) == "green"
	})
	for p := range phases {
		if strings.HasPrefix(p, "failed") {
			t.Errorf("status.json said %q while the agent repaired pm2 and left nginx to report mode; phases seen: %v", p, phases)
		}
	}
	st := drStatus(t, s)
	if r := drResource(st, "nginx/app_upstream"); r == nil || r["status"] != "drifted" || r["cause"] != "drift" {
		t.Errorf("status.json does not show nginx drifted: %v", r)
	}
	if r := drResource(st, "pm2/demo-blue"); r == nil || r["status"] != "in_sync" {
		t.Errorf("status.json: pm2/demo-blue %v, want in_sync after the repair", r)
	}
	if st["phase"] != "drifted" {
		t.Errorf("status.json phase %v (message %v, last_error %v), want drifted: drift left alone on purpose is not a failure",
			st["phase"], st["message"], st["last_error"])
	}
	code, out, _ := settleRun(t, s, "status", "-f", s.DesiredPath)
	if code != 0 || !regexp.MustCompile(`nginx\s+app_upstream\s+drifted`).MatchString(out) {
		t.Errorf("settle status: exit %d\n%s", code, out)
	}
	time.Sleep(500 * time.Millisecond) // deliveries are asynchronous
	if failed := drOfKind(hook.since(0), "apply_failed"); len(failed) != 0 {
		t.Errorf("repairing pm2 while nginx is report-only sent %d apply_failed notification(s): %v", len(failed), failed)
	}
	if n := len(drOfKind(hook.since(0), "drift_detected")); n != 1 {
		t.Errorf("%d drift_detected notifications, want 1: %v", n, drKinds(hook.since(0)))
	}
}

// TestDriftNotifications: one drift episode is one notification; a switch
// is announced as started and succeeded; a switch back is a rollback.
func TestDriftNotifications(t *testing.T) {
	s := sandbox.Start(t)
	editDesired(t, s, "inplace", `(?m)^\[agent\]`, "[agent]\nresync = \"1s\"\nmode = \"report\"")
	mustApply(t, s) // no webhook in this one's env
	hook := drNewHook(t)
	ag := drStartAgent(t, s, hook.env())
	ag.waitLog(t, "agent started.*mode=report", 10*time.Second)
	if n := hook.len(); n != 0 {
		t.Fatalf("%d notifications before anything happened: %v", n, drKinds(hook.since(0)))
	}

	drUpstreamTo(t, s, s.GreenPort)
	d := hook.waitKind(t, 0, "drift_detected", 8*time.Second)
	time.Sleep(4 * time.Second) // four resyncs, still drifted
	all := hook.since(0)
	if got := drOfKind(all, "drift_detected"); len(got) != 1 {
		t.Errorf("%d drift_detected notifications for one episode over several resyncs, want 1: %v", len(got), drKinds(all))
	}
	text, ok := d["text"].(string)
	if !ok || !strings.Contains(text, "nginx/app_upstream") || !strings.Contains(text, itoa(s.GreenPort)) {
		t.Errorf("drift_detected has no Slack text naming the resource: %v", d)
	}
	if len(all) != 1 {
		t.Errorf("report mode sent %v; want only drift_detected", drKinds(all))
	}

	// Enforce again: the drift is repaired (an apply), the episode ends.
	editDesired(t, s, "rename", `mode = "report"`, `mode = "enforce"`)
	waitFront(t, s, "blue", 10*time.Second)
	hook.waitKind(t, 1, "apply_succeeded", 10*time.Second)

	// A deploy: switch to green by editing the file.
	n := hook.len()
	setActive(t, s, "rename", "green")
	waitFront(t, s, "green", 15*time.Second)
	st := hook.waitKind(t, n, "apply_started", 5*time.Second)
	ok1 := hook.waitKind(t, n, "apply_succeeded", 10*time.Second)
	for _, b := range []map[string]any{st, ok1} {
		if txt, _ := b["text"].(string); txt == "" {
			t.Errorf("%v has no text", b)
		}
	}
	if txt, _ := ok1["text"].(string); !strings.Contains(txt, "active green") {
		t.Errorf("apply_succeeded does not say green is active: %q", txt)
	}
	if r := drOfKind(hook.since(n), "rollback_detected"); len(r) != 0 {
		t.Errorf("a deploy to a new color was announced as a rollback: %v", r)
	}

	// The switch back is a rollback.
	n = hook.len()
	setActive(t, s, "rename", "blue")
	waitFront(t, s, "blue", 15*time.Second)
	rb := hook.waitKind(t, n, "rollback_detected", 5*time.Second)
	if txt, _ := rb["text"].(string); !strings.Contains(txt, "green -> blue") {
		t.Errorf("rollback_detected text does not say green -> blue: %q", txt)
	}
	hook.waitKind(t, n, "apply_started", 5*time.Second)
	hook.waitKind(t, n, "apply_succeeded", 10*time.Second)
	if got := drOfKind(hook.since(0), "drift_detected"); len(got) != 1 {
		t.Errorf("%d drift_detected in all, want 1: %v", len(got), drKinds(hook.since(0)))
	}
	if got := drOfKind(hook.since(0), "apply_failed"); len(got) != 0 {
		t.Errorf("apply_failed sent: %v", got)
	}
	hook.mu.Lock()
	bad := hook.bad
	hook.mu.Unlock()
	if len(bad) != 0 {
		t.Errorf("webhook got requests that are not a POSTed JSON object to its URL: %q", bad)
	}
}

// drOutput is one thing settle printed or wrote.
type drOutput struct{ what, text string }

// TestDriftSecretsNeverLeak puts canaries in every secret settle handles
// and scans everything it prints and writes.
func TestDriftSecretsNeverLeak(t *testing.T) {
	s := sandbox.Start(t)
	hook := drNewHook(t)
	env := hook.env()
	appPW := func() string {
		_, rest, _ := strings.Cut(s.AppDSN, "demo_app:")
		pw, _, _ := strings.Cut(rest, "@")
		return pw
	}()
	canaries := map[string]string{
		"app secret in the PM2 env":         s.AppSecret,
		"admin DSN password":                pgPassword(s),
		"app DSN password (in the PM2 env)": appPW,
		"redis password":                    s.RedisPassword,
		"webhook token":                     hook.Token,
		"webhook URL":                       hook.URL,
	}
	for what, c := range canaries {
		if len(c) < 12 {
			t.Fatalf("canary %s too short to scan for: %q", what, c)
		}
	}
	editDesired(t, s, "inplace", `(?m)^\[agent\]`, "[agent]\nresync = \"1s\"")
	editDesired(t, s, "inplace", `(?m)^\[app\]`, "[app]\nstart_timeout = \"20s\"")

	var outs []drOutput
	run := func(want int, args ...string) string {
		t.Helper()
		code, out, errOut := drRun(t, s, env, args...)
		outs = append(outs, drOutput{"settle " + strings.Join(args, " ") + " (stdout)", out}, drOutput{"settle " + strings.Join(args, " ") + " (stderr)", errOut})
		if want >= 0 && code != want {
			t.Errorf("settle %v: exit %d, want %d\n%s%s", args, code, want, out, errOut)
		}
		return out + errOut
	}
	f := []string{"-f", s.DesiredPath}
	with := func(args ...string) []string { return append(args, f...) }

	run(0, with("validate")...)
	run(0, with("apply")...)
	run(0, with("snapshot", "create", "--id", "demo_canary")...)
	drUpstreamTo(t, s, s.GreenPort)
	for _, fm := range []string{"text", "json", "markdown"} {
		run(2, with("plan", "--format", fm)...)
		run(2, with("drift", "--format", fm)...)
	}
	run(0, with("apply")...)

	// The agent: a switch, a drift, an invalid file with a pasted DSN.
	ag := drStartAgent(t, s, env)
	ag.waitLog(t, "agent started", 10*time.Second)
	addr := drAgentAddr(t, ag)
	setActive(t, s, "rename", "green")
	waitFront(t, s, "green", 15*time.Second)
	drPM2(t, s, "stop", "demo-blue")
	drWithin(t, 15*time.Second, "agent restarts the stopped standby", func() bool { return drHealthy(s.BluePort) })
	good := mustRead(t, s.DesiredPath)
	pasted := strings.Replace(good, `dsn_env      = "SETTLE_PG_DSN"`, `dsn_env      = "`+s.AdminDSN+`"`, 1)
	pasted = strings.Replace(pasted, `password_env = "REDIS_PASSWORD"`, `password_env = "`+s.RedisPassword+`"`+"\nredis_url = \"redis://:"+s.RedisPassword+"@"+s.RedisAddr+"\"", 1)
	if pasted == good || !strings.Contains(pasted, pgPassword(s)) {
		t.Fatalf("could not paste the DSN into the file")
	}
	if err := os.WriteFile(s.DesiredPath, []byte(pasted), 0o644); err != nil {
		t.Fatal(err)
	}
	ag.waitLog(t, "desired file rejected", 5*time.Second)
	run(1, with("validate")...)
	run(1, with("plan")...)
	run(-1, "status", "--state-dir", s.StateDir)
	for _, p := range []string{"/status", "/metrics", "/healthz"} {
		code, body := httpGet("http://" + addr + p)
		if code != 200 {
			t.Errorf("agent %s: %d", p, code)
		}
		outs = append(outs, drOutput{"agent GET " + p, body})
	}
	if err := os.WriteFile(s.DesiredPath, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	ag.stop()
	outs = append(outs, drOutput{"agent log", ag.logs.String()})

	// A failed apply: green cannot start.
	editDesired(t, s, "inplace", `standby = "running"`, `standby = "stopped"`)
	setActive(t, s, "inplace", "blue")
	run(0, with("apply")...)
	if err := os.WriteFile(filepath.Join(s.Dir, "releases/green/crash-on-start"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	setActive(t, s, "inplace", "green")
	if out := run(1, with("apply")...); !strings.Contains(out, "crash") {
		t.Errorf("failed apply does not say green crashed:\n%s", out)
	}
	setActive(t, s, "inplace", "blue")

	// Everything that reads the state back.
	run(0, with("status")...)
	run(0, with("status", "--format", "json")...)
	run(0, with("history")...)
	run(0, with("history", "--format", "json")...)
	run(0, with("report", "--format", "markdown")...)
	run(0, with("report", "--format", "json")...)
	run(0, with("snapshot", "list")...)
	run(0, with("snapshot", "list", "--format", "json")...)
	run(0, with("snapshot", "verify", "demo_canary")...)
	outs = append(outs, drOutput{"webhook bodies", hook.all()})

	files := 0
	err := filepath.WalkDir(s.StateDir, func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files++
		outs = append(outs, drOutput{p, string(b)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"forensics", "journal.jsonl", "status.json", "generations"} {
		if _, err := os.Stat(filepath.Join(s.StateDir, p)); err != nil {
			t.Errorf("state dir lacks %s: the scan would prove little: %v", p, err)
		}
	}
	if len(hook.since(0)) == 0 {
		t.Errorf("no notification was delivered: the webhook canary was never exercised")
	}
	scanned := 0
	for _, o := range outs {
		scanned += len(o.text)
		for what, c := range canaries {
			if i := strings.Index(o.text, c); i >= 0 {
				ctx := o.text[max(0, i-80):min(len(o.text), i+len(c)+40)]
				t.Errorf("%s leaks the %s: ...%s...", o.what, what, strings.ReplaceAll(ctx, c, "<"+what+">"))
			}
		}
	}
	t.Logf("scanned %d outputs (%d files under the state dir, %d bytes) for %d canaries", len(outs), files, scanned, len(canaries))
}
