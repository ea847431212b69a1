//go:build e2e

package e2e_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"settle/e2e/sandbox"
)

// rbEntry is the part of a journal line these tests read.
type rbEntry struct {
	Time       time.Time      `json:"time"`
	Event      string         `json:"event"`
	Generation string         `json:"generation"`
	Active     string         `json:"active"`
	Snapshot   string         `json:"snapshot"`
	Kind       string         `json:"kind"`
	Op         string         `json:"op"`
	Outcome    string         `json:"outcome"`
	Detail     string         `json:"detail"`
	Data       map[string]any `json:"data"`
}

func rbJournal(t *testing.T, s *sandbox.Sandbox) []rbEntry {
	t.Helper()
	f, err := os.Open(filepath.Join(s.StateDir, "journal.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []rbEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		var e rbEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("journal line is not JSON: %v: %s", err, sc.Bytes())
		}
		out = append(out, e)
	}
	return out
}

// rbVerified is the verify entry journaled after the apply that made
// active and snapshot live, at or after since; nil when there is none yet.
func rbVerified(t *testing.T, s *sandbox.Sandbox, active, snap string, since time.Time) *rbEntry {
	t.Helper()
	for _, e := range rbJournal(t, s) {
		if e.Event == "verify" && e.Active == active && e.Snapshot == snap && !e.Time.Before(since) {
			return &e
		}
	}
	return nil
}

// rbLeadsURL is /api/leads through nginx.
func rbLeadsURL(s *sandbox.Sandbox) string {
	return strings.Replace(s.FrontURL, "/api/health", "/api/leads", 1)
}

func rbLeads(s *sandbox.Sandbox) (int, string) {
	code, body := httpGet(rbLeadsURL(s))
	var v struct {
		Count int
		Color string
	}
	if code != 200 || json.Unmarshal([]byte(body), &v) != nil {
		return -1, ""
	}
	return v.Count, v.Color
}

func rbDatabases(t *testing.T, ctx context.Context, s *sandbox.Sandbox) []string {
	t.Helper()
	c, err := pgx.Connect(ctx, s.AdminDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	rows, _ := c.Query(ctx, "SELECT datname FROM pg_database ORDER BY datname")
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// rbEditAtomically makes several replacements in one write, renamed over
// the file the way an editor saves: the agent sees one new generation.
func rbEditAtomically(t *testing.T, s *sandbox.Sandbox, pairs ...string) {
	t.Helper()
	b, err := os.ReadFile(s.DesiredPath)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(pairs); i += 2 {
		rx := regexp.MustCompile(pairs[i])
		if !rx.Match(b) {
			t.Fatalf("rbEditAtomically: %q not in the file", pairs[i])
		}
		b = rx.ReplaceAll(b, []byte(pairs[i+1]))
	}
	tmp := s.DesiredPath + ".rb.tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, s.DesiredPath); err != nil {
		t.Fatal(err)
	}
}

// TestRollbackFullFromOneEdit is the full-rollback runbook as one edit of
// desired.toml, once with settle apply and once with the agent running.
func TestRollbackFullFromOneEdit(t *testing.T) {
	for _, via := range []string{"apply", "agent"} {
		t.Run(via, func(t *testing.T) { rbFullRollback(t, via) })
	}
}

func rbFullRollback(t *testing.T, via string) {
	s := sandbox.Start(t)
	ctx := pgCtx(t)
	mustApply(t, s)
	waitFront(t, s, "blue", 5*time.Second)
	var ag *agentProc
	if via == "agent" {
		ag = startAgent(t, s)
		ag.waitLog(t, "agent started", 10*time.Second)
	}

	// The pre-deploy snapshot, then the deploy's writes.
	if code, out, errOut := settleRun(t, s, "snapshot", "create", "-f", s.DesiredPath, "--id", "demo_predeploy"); code != 0 {
		t.Fatalf("snapshot create: exit %d\n%s%s", code, out, errOut)
	}
	var man struct{ Rows map[string]int }
	if err := json.Unmarshal([]byte(mustRead(t, filepath.Join(s.SnapshotDir, "demo_predeploy.json"))), &man); err != nil {
		t.Fatal(err)
	}
	snapRows := man.Rows["public.leads"]
	if snapRows == 0 {
		t.Fatalf("manifest of demo_predeploy has no leads rows: %+v", man)
	}
	pgExec(t, ctx, s.AppDSN, "INSERT INTO leads (email) SELECT 'deploy' || i || '@example.com' FROM generate_series(1, 3) AS i")

	setActive(t, s, "rename", "green")
	if via == "apply" {
		mustApply(t, s)
	}
	waitFront(t, s, "green", 15*time.Second)
	if via == "agent" {
		ag.waitLog(t, "converged.*active=green", 15*time.Second)
	}
	// Green's bad migration writes garbage.
	pgExec(t, ctx, s.AppDSN, "INSERT INTO leads (email) SELECT 'garbage' || i || '@example.com' FROM generate_series(1, 2) AS i")
	later := snapRows + 5
	if n, c := rbLeads(s); n != later || c != "green" {
		t.Fatalf("before the rollback nginx serves %d leads from %q, want %d from green", n, c, later)
	}

	// The one edit.
	edit := time.Now()
	rbEditAtomically(t, s, `(?m)^active\s*=\s*"green"`, `active = "blue"`,
		`(?m)^snapshot\s*=\s*"demo_initial"`, `snapshot = "demo_predeploy"`)
	if via == "apply" {
		mustApply(t, s)
	}
	var ver *rbEntry
	drWithin(t, 60*time.Second, "the rollback is verified in the journal", func() bool {
		ver = rbVerified(t, s, "blue", "demo_predeploy", edit)
		return ver != nil
	})
	t.Logf("full rollback via %s: edit to verified in %s (journal verify at %s)", via,
		ver.Time.Sub(edit).Round(time.Millisecond), ver.Time.Format(time.RFC3339Nano))

	// Traffic and data.
	if c := frontColor(s); c != "blue" {
		t.Fatalf("nginx serves %q after the rollback, want blue", c)
	}
	var n int
	var color string
	drWithin(t, 15*time.Second, "nginx serves the snapshot's leads", func() bool {
		n, color = rbLeads(s)
		return n == snapRows && color == "blue"
	})
	var kept []string
	for _, db := range rbDatabases(t, ctx, s) {
		if strings.HasPrefix(db, "demo__kept_") {
			kept = append(kept, db)
		}
	}
	if len(kept) != 1 {
		t.Fatalf("kept databases %v, want exactly one demo__kept_*", kept)
	}
	if got := queryInt(t, ctx, dsnFor(s, kept[0]), "SELECT count(*) FROM leads"); got != later {
		t.Errorf("kept database %s has %d leads, want the %d written before the rollback", kept[0], got, later)
	}
	if got := queryInt(t, ctx, dsnFor(s, kept[0]), "SELECT count(*) FROM leads WHERE email LIKE 'garbage%'"); got != 2 {
		t.Errorf("kept database %s has %d of green's writes, want 2", kept[0], got)
	}
	if code, out, errOut := settleRun(t, s, "snapshot", "list", "-f", s.DesiredPath); code != 0 || !strings.Contains(out, kept[0]) {
		t.Errorf("snapshot list: exit %d, does not list %s:\n%s%s", code, kept[0], out, errOut)
	}

	// Forensics of the cut.
	dirs, _ := filepath.Glob(filepath.Join(s.StateDir, "forensics", "*swap*"))
	if len(dirs) != 1 {
		all, _ := filepath.Glob(filepath.Join(s.StateDir, "forensics", "*"))
		t.Fatalf("forensics of the swap: %v (all: %v), want one dir", dirs, all)
	}
	fdir := dirs[0]
	var idx struct {
		Files []struct {
			Name, Source string
			Size         int64
		}
	}
	var names []string
	drWithin(t, 15*time.Second, "forensics index lists the dump of the kept database", func() bool {
		b, err := os.ReadFile(filepath.Join(fdir, "index.json"))
		if err != nil || json.Unmarshal(b, &idx) != nil {
			return false
		}
		names = names[:0]
		for _, f := range idx.Files {
			names = append(names, f.Name)
		}
		return strings.Contains(strings.Join(names, " "), kept[0]+".dump")
	})
	for _, want := range []string{"demo-green-out.log", "demo-green-error.log", "nginx-access.log", "nginx-error.log"} {
		found := false
		for _, f := range idx.Files {
			if f.Name == want {
				found = true
				if _, err := os.Stat(filepath.Join(fdir, want)); err != nil {
					t.Errorf("index lists %s but the file is missing: %v", want, err)
				}
				if strings.HasSuffix(want, ".log") && strings.HasPrefix(want, "demo-") && !strings.HasPrefix(f.Source, s.PM2Home) {
					t.Errorf("%s was taken from %q, not from PM2's logs under %s", want, f.Source, s.PM2Home)
				}
			}
		}
		if !found {
			t.Errorf("forensics index does not list %s (the leaving color is green): %v", want, names)
		}
	}
	files := 0
	filepath.WalkDir(fdir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			t.Error(err)
			return nil
		}
		if de.IsDir() {
			return nil
		}
		fi, err := de.Info()
		if err != nil {
			t.Error(err)
			return nil
		}
		files++
		if m := fi.Mode().Perm(); m != 0o600 {
			t.Errorf("forensics file %s has mode %o, want 600", p, m)
		}
		return nil
	})
	if files < 5 {
		t.Errorf("forensics dir holds %d files", files)
	}

	// The journal's verification.
	checks, _ := ver.Data["checks"].([]any)
	if ver.Outcome != "ok" || len(checks) == 0 {
		t.Errorf("verify entry: outcome %q with %d checks, want ok with checks: %+v", ver.Outcome, len(checks), ver)
	}
	var checkNames []string
	for _, c := range checks {
		m, _ := c.(map[string]any)
		name, _ := m["name"].(string)
		checkNames = append(checkNames, name)
		if m["ok"] != true {
			t.Errorf("verification check failed: %v", m)
		}
	}
	for _, want := range []string{"health blue", "nginx serves blue", "row counts"} {
		if !strings.Contains(strings.Join(checkNames, "|"), want) {
			t.Errorf("verification lacks %q: %v", want, checkNames)
		}
	}

	// The incident report.
	code, md, errOut := settleRun(t, s, "report", "-f", s.DesiredPath, "--format", "markdown")
	if code != 0 {
		t.Fatalf("report markdown: exit %d\n%s", code, errOut)
	}
	for _, want := range []string{"## Timeline", "## Data loss", "green → blue", "database demo was replaced by snapshot demo_predeploy",
		"kept in database " + kept[0], "postgres/demo swap", fdir} {
		if !strings.Contains(md, want) {
			t.Errorf("report markdown lacks %q", want)
		}
	}
	code, js, errOut := settleRun(t, s, "report", "-f", s.DesiredPath, "--format", "json")
	var rep struct {
		Timeline []any
		DataLoss struct {
			Statement string
			Swaps     []struct {
				Database, Snapshot, Statement string
				KeptDatabase                  string `json:"kept_database"`
			}
		} `json:"data_loss"`
	}
	if err := json.Unmarshal([]byte(js), &rep); code != 0 || err != nil {
		t.Fatalf("report json: exit %d, %v\n%s", code, err, errOut)
	}
	if !strings.Contains(js, `"data_loss"`) || rep.DataLoss.Statement == "" || len(rep.DataLoss.Swaps) != 1 ||
		rep.DataLoss.Swaps[0].KeptDatabase != kept[0] || rep.DataLoss.Swaps[0].Snapshot != "demo_predeploy" || len(rep.Timeline) == 0 {
		t.Errorf("report json data_loss: %+v", rep.DataLoss)
	}
	if code, _ := planJSON(t, s); code != 0 {
		t.Errorf("plan after the rollback: exit %d, want 0 (in sync)", code)
	}
}

// rbLoad sends GETs through nginx in the background, bounded in count and
// time; it stops itself.
type rbLoad struct {
	ok, failed atomic.Int64
	stop       chan struct{}
	wg         sync.WaitGroup
}

func rbStartLoad(t *testing.T, url string, max int, d time.Duration) *rbLoad {
	l := &rbLoad{stop: make(chan struct{})}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		end := time.Now().Add(d)
		for i := 0; i < max && time.Now().Before(end); i++ {
			select {
			case <-l.stop:
				return
			case <-time.After(15 * time.Millisecond):
			}
			if code, _ := httpGet(url); code == 200 {
				l.ok.Add(1)
			} else {
				l.failed.Add(1)
			}
		}
	}()
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(l.stop) }); l.wg.Wait() })
	return l
}

// TestRollbackAnalysisWindowHoldsBadGeneration: green answers 500 to 90% of
// requests behind a green health check; after the switch the analysis
// window judges it, the agent goes back to blue, holds the generation and
// does not retry it until the file changes.
func TestRollbackAnalysisWindowHoldsBadGeneration(t *testing.T) {
	s := sandbox.Start(t)
	editDesired(t, s, "inplace", `(?m)^\[agent\]`, "[agent]\nresync = \"1s\"\nanalysis_window = \"3s\"")
	editDesired(t, s, "inplace", `(?m)^\[app\]`, "[app]\nstart_timeout = \"30s\"")
	mustApply(t, s)
	ag := startAgent(t, s)
	ag.waitLog(t, "agent started", 10*time.Second)

	failRate := filepath.Join(s.Dir, "releases/green/fail-rate")
	if err := os.WriteFile(failRate, []byte("0.9\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _ := httpGet(healthURL(s.GreenPort)); code != 200 {
		t.Fatalf("green's health check must stay green with fail-rate 0.9; answers %d", code)
	}
	load := rbStartLoad(t, rbLeadsURL(s), 2000, 25*time.Second)
	time.Sleep(300 * time.Millisecond)

	setActive(t, s, "rename", "green")
	waitFront(t, s, "green", 10*time.Second)
	switched := time.Now()
	var st map[string]any
	drWithin(t, 20*time.Second, "the agent holds the bad generation", func() bool {
		st = drStatus(t, s)
		return st["phase"] == "held"
	})
	waitFront(t, s, "blue", 5*time.Second)
	t.Logf("switched to green; held and back on blue %s later; load so far: %d ok, %d failed",
		time.Since(switched).Round(time.Millisecond), load.ok.Load(), load.failed.Load())
	msg, _ := st["message"].(string)
	for _, want := range []string{"failed analysis", "serving generation", "error rate"} {
		if !strings.Contains(msg, want) {
			t.Errorf("status message lacks %q: %q", want, msg)
		}
	}
	held, _ := st["held"].(string)
	if held == "" {
		t.Fatalf("status.json names no held generation: %v", st)
	}
	var heldAt time.Time
	for _, e := range rbJournal(t, s) {
		if e.Event == "held" && e.Generation == held {
			heldAt = e.Time
			if !strings.Contains(e.Detail, "failed analysis") {
				t.Errorf("held entry detail: %q", e.Detail)
			}
		}
	}
	if heldAt.IsZero() {
		t.Fatalf("journal has no held event for generation %s", held)
	}
	code, out, _ := settleRun(t, s, "status", "-f", s.DesiredPath)
	if code != 0 || !strings.Contains(out, "phase:     held") || !strings.Contains(out, "failed analysis") {
		t.Errorf("settle status does not say held:\n%s", out)
	}

	// Not retried: several resyncs pass, blue keeps serving, nothing is
	// done for the held generation.
	drStillFor(t, 5*time.Second, "blue serving while held", func() bool {
		return frontColor(s) == "blue" && drUpstreamPort(t, s, s.BluePort)
	})
	if st := drStatus(t, s); st["phase"] != "held" || st["held"] != held {
		t.Errorf("after resyncs status is %v (held %v), want still held %s", st["phase"], st["held"], held)
	}
	for _, e := range rbJournal(t, s) {
		if e.Time.After(heldAt) && e.Generation == held && (e.Event == "action-begin" || e.Event == "apply-begin") {
			t.Errorf("the held generation was retried: %+v", e)
		}
	}

	// The fix: green is repaired and the file changes (still active green).
	if err := os.Remove(failRate); err != nil {
		t.Fatal(err)
	}
	editDesired(t, s, "rename", `start_timeout = "30s"`, `start_timeout = "31s"`)
	waitFront(t, s, "green", 15*time.Second)
	drWithin(t, 20*time.Second, "status converged after the fix", func() bool {
		st = drStatus(t, s)
		return st["phase"] == "converged"
	})
	if h, _ := st["held"].(string); h != "" {
		t.Errorf("status still names a held generation after the fix: %s", h)
	}
	drStillFor(t, 3*time.Second, "green serving after the fix", func() bool { return frontColor(s) == "green" })
}
