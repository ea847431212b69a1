//go:build e2e

package e2e_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"settle/e2e/sandbox"
)

func TestApplyFromNothing(t *testing.T) {
	s := sandbox.Start(t)
	if code, _ := planJSON(t, s); code != 2 {
		t.Fatalf("plan before apply: exit %d, want 2 (drift)", code)
	}
	mustApply(t, s)
	if c := frontColor(s); c != "blue" {
		t.Fatalf("after apply nginx serves %q, want blue", c)
	}
	code, plan := planJSON(t, s)
	if code != 0 || plan["in_sync"] != true {
		t.Fatalf("plan after apply: exit %d, in_sync %v, want 0 and true: %v", code, plan["in_sync"], plan)
	}
	for _, r := range plan["resources"].([]any) {
		res := r.(map[string]any)
		for _, k := range []string{"kind", "name", "status", "actions"} {
			if _, ok := res[k]; !ok {
				t.Errorf("plan resource lacks %q: %v", k, res)
			}
		}
	}
	// A second apply has nothing to do.
	code, out, _ := settleRun(t, s, "apply", "-f", s.DesiredPath)
	if code != 0 || !strings.Contains(out, "In sync") {
		t.Fatalf("second apply: exit %d, stdout %q", code, out)
	}
}

// load sends requests through nginx until stopped and counts failures:
// anything but a 200 is a request a user would have seen fail.
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	lastFail   string
	stop       chan struct{}
	wg         sync.WaitGroup
}

func startLoad(url string, workers int) *load {
	l := &load{stop: make(chan struct{})}
	for i := 0; i < workers; i++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				code, body := httpGet(url)
				if code == 200 {
					l.ok.Add(1)
					continue
				}
				l.failed.Add(1)
				l.mu.Lock()
				l.lastFail = body
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func (l *load) end() { close(l.stop); l.wg.Wait() }

func TestAgentSwitchesUnderLoadWithoutFailures(t *testing.T) {
	s := sandbox.Start(t)
	mustApply(t, s)
	ag := startAgent(t, s)
	ag.waitLog(t, "agent started", 10*time.Second)
	l := startLoad(s.FrontURL, 4)
	ways := []string{"rename", "inplace", "sed", "rename", "inplace", "sed"}
	color := "blue"
	for i, how := range ways {
		if color == "blue" {
			color = "green"
		} else {
			color = "blue"
		}
		setActive(t, s, how, color)
		waitFront(t, s, color, 10*time.Second)
		t.Logf("switch %d (%s) to %s landed", i+1, how, color)
		time.Sleep(300 * time.Millisecond)
	}
	l.end()
	if n := l.failed.Load(); n != 0 {
		t.Fatalf("%d of %d requests through nginx failed during switches; last: %s", n, n+l.ok.Load(), l.lastFail)
	}
	if l.ok.Load() < 50 {
		t.Fatalf("only %d requests went through: the load did not run", l.ok.Load())
	}
	t.Logf("%d requests, 0 failed", l.ok.Load())
}

func TestGreenCrashingOnStartKeepsBlue(t *testing.T) {
	s := sandbox.Start(t)
	editDesired(t, s, "inplace", `standby = "running"`, `standby = "stopped"`)
	editDesired(t, s, "inplace", `(?m)^\[app\]`, "[app]\nstart_timeout = \"20s\"")
	mustApply(t, s)
	if err := os.WriteFile(filepath.Join(s.Dir, "releases/green/crash-on-start"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	setActive(t, s, "rename", "green")
	start := time.Now()
	code, _, errOut := settleRun(t, s, "apply", "-f", s.DesiredPath)
	if code != 1 {
		t.Fatalf("apply with a crashing green: exit %d, want 1\n%s", code, errOut)
	}
	if time.Since(start) > 25*time.Second {
		t.Errorf("apply took %s: a crash must be reported, not waited on to the timeout", time.Since(start))
	}
	for _, want := range []string{"demo-green", "crash", "nginx/app_upstream", "waits for pm2/demo-green"} {
		if !strings.Contains(errOut+mustRead(t, filepath.Join(s.StateDir, "status.json")), want) && !strings.Contains(errOut, want) {
			t.Errorf("apply's errors do not mention %q:\n%s", want, errOut)
		}
	}
	if !strings.Contains(errOut, "crash-on-start present") {
		t.Errorf("the error does not quote green's last log lines:\n%s", errOut)
	}
	if c := frontColor(s); c != "blue" {
		t.Fatalf("nginx serves %q after a failed switch, want blue", c)
	}
	if up := mustRead(t, s.UpstreamFile); !strings.Contains(up, itoa(s.BluePort)) {
		t.Fatalf("upstream file moved away from blue:\n%s", up)
	}
	// Blue, the color that served, was not stopped.
	if code, _ := httpGet(healthURL(s.BluePort)); code != 200 {
		t.Fatalf("blue's health answers %d after the failed switch", code)
	}
}

func TestNginxTestFailureRestoresUpstream(t *testing.T) {
	s := sandbox.Start(t)
	mustApply(t, s)
	before := mustRead(t, s.UpstreamFile)
	// Someone else's include breaks the whole config.
	broken := filepath.Join(s.NginxPrefix, "conf.d/broken.conf")
	if err := os.WriteFile(broken, []byte("upstream_nonsense on;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := mustRead(t, s.NginxConf)
	conf = strings.Replace(conf, "include ", "include "+broken+";\n    include ", 1)
	if err := os.WriteFile(s.NginxConf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	setActive(t, s, "sed", "green")
	code, _, errOut := settleRun(t, s, "apply", "-f", s.DesiredPath)
	if code != 1 {
		t.Fatalf("apply with a broken include: exit %d, want 1\n%s", code, errOut)
	}
	if !strings.Contains(errOut, "[emerg]") || !strings.Contains(errOut, "upstream_nonsense") {
		t.Errorf("error does not quote nginx:\n%s", errOut)
	}
	if !strings.Contains(errOut, "restored") {
		t.Errorf("error does not say the previous file was restored:\n%s", errOut)
	}
	if after := mustRead(t, s.UpstreamFile); after != before {
		t.Fatalf("upstream file not restored:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if c := frontColor(s); c != "blue" {
		t.Fatalf("nginx serves %q, want blue (still running its last good config)", c)
	}
}

func TestAgentRepairsDriftWithinResync(t *testing.T) {
	s := sandbox.Start(t)
	editDesired(t, s, "inplace", `(?m)^\[agent\]`, "[agent]\nresync = \"2s\"")
	mustApply(t, s)
	ag := startAgent(t, s)
	ag.waitLog(t, "agent started", 10*time.Second)

	// Hand edit of the upstream file: traffic sent to green behind settle's back.
	if err := os.WriteFile(s.UpstreamFile, []byte("upstream app_upstream { server 127.0.0.1:"+itoa(s.GreenPort)+"; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	reloadNginx(t, s)
	waitFront(t, s, "green", 5*time.Second)
	// Past nginx's reload window, where old workers still answer blue.
	time.Sleep(300 * time.Millisecond)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(mustRead(t, s.UpstreamFile), ":"+itoa(s.BluePort)+";") {
		if time.Now().After(deadline) {
			t.Fatalf("upstream file not repaired within 10s:\n%s", mustRead(t, s.UpstreamFile))
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitFront(t, s, "blue", 5*time.Second)

	// The active process stopped by hand.
	pm2(t, ctxT(t), s, "", "stop", "demo-blue")
	deadline = time.Now().Add(12 * time.Second)
	for {
		if code, _ := httpGet(healthURL(s.BluePort)); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo-blue not restarted by the agent within 12s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitFront(t, s, "blue", 5*time.Second)
}

func TestAgentKilledMidSwitchConvergesOnRestart(t *testing.T) {
	s := sandbox.Start(t)
	editDesired(t, s, "inplace", `standby = "running"`, `standby = "stopped"`)
	mustApply(t, s)
	ag := startAgent(t, s)
	ag.waitLog(t, "agent started", 10*time.Second)
	setActive(t, s, "rename", "green")
	// Green is stopped, so the switch must start it: kill the agent while
	// it waits for green to be healthy.
	ag.waitLog(t, `action done.*op=start`, 15*time.Second)
	ag.cmd.Process.Kill()
	<-ag.done
	if c := frontColor(s); c != "blue" {
		t.Fatalf("nginx serves %q before the switch finished; want blue", c)
	}
	ag2 := startAgent(t, s)
	waitFront(t, s, "green", 20*time.Second)
	ag2.waitLog(t, `converged`, 20*time.Second)
	if !strings.Contains(ag2.logs.String(), "interrupted") {
		t.Errorf("restarted agent did not report the interrupted action:\n%s", ag2.logs.String())
	}
	code, _ := planJSON(t, s)
	if code != 0 {
		// The agent holds no lock on plan; in sync means blue was stopped too.
		t.Fatalf("plan after restart: exit %d, want 0", code)
	}
}

func TestSecondAgentRefused(t *testing.T) {
	s := sandbox.Start(t)
	mustApply(t, s)
	ag := startAgent(t, s)
	ag.waitLog(t, "agent started", 10*time.Second)
	code, _, errOut := settleRun(t, s, "agent", "-f", s.DesiredPath, "--listen", "127.0.0.1:0")
	if code != 1 || !strings.Contains(errOut, "another settle") {
		t.Fatalf("second agent: exit %d, stderr %q; want 1 and a clear message", code, errOut)
	}
}

func TestAgentKeepsLastGoodOnInvalidFile(t *testing.T) {
	s := sandbox.Start(t)
	mustApply(t, s)
	ag := startAgent(t, s)
	ag.waitLog(t, "agent started", 10*time.Second)
	good := mustRead(t, s.DesiredPath)
	bad := strings.Replace(good, `active  = "blue"`, `active  = "green"`+"\nactiv = 1", 1)
	if err := os.WriteFile(s.DesiredPath, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	ag.waitLog(t, `desired.toml:\d+: app.activ: unknown key`, 5*time.Second)
	if err := os.WriteFile(s.DesiredPath, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ag.waitLog(t, `empty`, 5*time.Second)
	time.Sleep(500 * time.Millisecond)
	if c := frontColor(s); c != "blue" {
		t.Fatalf("nginx serves %q after invalid files; want blue untouched", c)
	}
	st := mustRead(t, filepath.Join(s.StateDir, "status.json"))
	if !strings.Contains(st, `"phase": "invalid"`) {
		t.Errorf("status does not say the file is invalid:\n%s", st)
	}
}

// A green release misconfigured to answer as blue passes its own health
// check, but through nginx the switch is not proven: it is put back, blue
// keeps serving, and the agent holds the generation instead of retrying.
func TestSwitchThatDoesNotServeIsUndoneAndHeld(t *testing.T) {
	s := sandbox.Start(t)
	eco := filepath.Join(s.Dir, "releases/green/ecosystem.config.js")
	b := mustRead(t, eco)
	if !strings.Contains(b, `"COLOR": "green"`) {
		t.Fatalf("green's ecosystem file has no COLOR to break:\n%s", b)
	}
	if err := os.WriteFile(eco, []byte(strings.Replace(b, `"COLOR": "green"`, `"COLOR": "blue"`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	editDesired(t, s, "inplace", `(?m)^\[agent\]`, "[agent]\nresync = \"1s\"")
	mustApply(t, s)
	before := mustRead(t, s.UpstreamFile)
	ag := startAgent(t, s)
	ag.waitLog(t, "agent started", 10*time.Second)
	setActive(t, s, "rename", "green")
	ag.waitLog(t, `generation held`, 30*time.Second)
	if up := mustRead(t, s.UpstreamFile); up != before {
		t.Fatalf("the upstream file was not put back:\n%s", up)
	}
	if c := frontColor(s); c != "blue" {
		t.Fatalf("nginx serves %q, want blue", c)
	}
	st := mustRead(t, filepath.Join(s.StateDir, "status.json"))
	if !strings.Contains(st, `"phase": "held"`) || !strings.Contains(st, "put back") {
		t.Fatalf("status does not say the generation is held:\n%s", st)
	}
	// Not retried: no further write to nginx over several resyncs.
	writes := strings.Count(ag.logs.String(), "op=write")
	time.Sleep(4 * time.Second)
	if n := strings.Count(ag.logs.String(), "op=write"); n != writes {
		t.Fatalf("the held generation was retried: %d nginx writes, then %d", writes, n)
	}
}
