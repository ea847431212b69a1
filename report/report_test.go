package report

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"settle/reconcilers"
	"settle/state"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// The journal under testdata carries this secret in an error field.
const goldenCanary = "canary-report-golden-9d2c"

var (
	from = time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	to   = from.Add(24 * time.Hour)
)

func TestMain(m *testing.M) {
	flag.Parse()
	reconcilers.AddSecret(goldenCanary)
	os.Exit(m.Run())
}

func journal(t *testing.T) []state.Entry {
	t.Helper()
	entries, err := state.ReadJournal("testdata")
	if err != nil || len(entries) == 0 {
		t.Fatalf("read testdata/journal.jsonl: %d entries, %v", len(entries), err)
	}
	return entries
}

func TestGolden(t *testing.T) {
	r := Build(journal(t), from, to)
	for _, f := range []struct {
		file   string
		render func(*bytes.Buffer) error
	}{
		{"rollback.md", func(b *bytes.Buffer) error { return r.Markdown(b) }},
		{"rollback.json", func(b *bytes.Buffer) error { return r.JSON(b) }},
	} {
		var got bytes.Buffer
		if err := f.render(&got); err != nil {
			t.Fatal(err)
		}
		golden(t, f.file, got.Bytes())
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./report -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test ./report -update, then review the diff):\n%s", name, firstDiff(string(want), string(got)))
	}
}

func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\n- %s\n+ %s", i+1, wl, gl)
		}
	}
	return ""
}

// The facts an on-call engineer needs, stated independently of the golden
// file so a careless -update cannot bless a wrong report.
func TestRollbackFacts(t *testing.T) {
	r := Build(journal(t), from, to)
	c := r.Changes
	if c.Before == nil || c.Before.Active != "blue" || c.Before.Snapshot != "cepcom_20261202_020000" ||
		c.After == nil || c.After.Active != "blue" || c.After.Snapshot != "cepcom_20261203_020000" || !c.After.Dirty || len(c.Applies) != 2 {
		t.Errorf("changes: before %+v after %+v, %d applies", c.Before, c.After, len(c.Applies))
	}
	if got := strings.Join(c.ActivePath, " "); got != "blue green blue" {
		t.Errorf("active path %q, want the deploy and its rollback", got)
	}
	if len(r.DataLoss.Swaps) != 1 {
		t.Fatalf("swaps: %+v", r.DataLoss.Swaps)
	}
	s := r.DataLoss.Swaps[0]
	for _, want := range []string{"cepcom_20261203_020000", "between 2026-12-03 02:00:00Z and 2026-12-03 16:15:46Z",
		"kept in database cepcom__kept_20261203T161546Z until 2026-12-10 16:15:46Z"} {
		if !strings.Contains(s.Statement, want) {
			t.Errorf("swap statement lacks %q: %s", want, s.Statement)
		}
	}
	if len(r.DataLoss.Forensics) != 1 || len(r.DataLoss.Flushes) != 1 {
		t.Errorf("forensics %v, flushes %v", r.DataLoss.Forensics, r.DataLoss.Flushes)
	}
	// Begin and end are one row, with the end's outcome and duration.
	var restore *Row
	for i, row := range r.Timeline {
		if row.What == "postgres/cepcom restore" {
			restore = &r.Timeline[i]
		}
		if row.Event == "action-begin" || row.Event == "action-end" {
			t.Errorf("uncollapsed row %+v", row)
		}
	}
	if restore == nil || restore.DurationMS != 45000 || restore.Outcome != "ok" || !restore.Time.Equal(time.Date(2026, 12, 3, 16, 15, 0, 300e6, time.UTC)) {
		t.Errorf("restore row %+v", restore)
	}
	last := r.Actions[len(r.Actions)-1]
	if last.Op != "stop" || last.Outcome != "unfinished" {
		t.Errorf("the action cut by the crash: %+v", last)
	}
	if len(r.Verification) != 3 || r.Verification[1].Outcome != "failed" || len(r.Verification[2].Checks) != 4 {
		t.Errorf("verification %+v", r.Verification)
	}
	for _, e := range r.Timeline {
		if e.Time.Before(from) {
			t.Errorf("entry before the range in the timeline: %+v", e)
		}
	}
}

func TestNoSwap(t *testing.T) {
	var md bytes.Buffer
	r := Build(journal(t), from, time.Date(2026, 12, 3, 15, 0, 0, 0, time.UTC))
	r.Markdown(&md)
	if !strings.Contains(md.String(), "No database was replaced: no data loss from settle's actions.") {
		t.Errorf("no-swap statement missing:\n%s", md.String())
	}
	r = Build(nil, from, to)
	var js bytes.Buffer
	if err := r.JSON(&js); err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(js.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"timeline", "actions", "verification", "to_fill"} {
		if _, ok := v[k].([]any); !ok {
			t.Errorf("empty report: %s is %v, want []", k, v[k])
		}
	}
}

func TestCanaryNeverReachesReport(t *testing.T) {
	const canary = "canary-report-9f8e7d6c"
	const quoted = `canary"quoted\secret`
	reconcilers.AddSecret(canary)
	reconcilers.AddSecret(quoted)
	at := from.Add(time.Hour)
	entries := []state.Entry{
		{Time: at, Event: state.EvApplyBegin, Generation: "g1", Detail: "dsn " + canary},
		{Time: at, Event: state.EvActionBegin, Generation: "g1", Kind: "postgres", Resource: "db", Op: "swap"},
		{Time: at, Event: state.EvActionEnd, Generation: "g1", Kind: "postgres", Resource: "db", Op: "swap", Outcome: "ok",
			Error: "psql: " + canary + " " + quoted, Data: map[string]any{"kept_database": canary, "snapshot_created": "2026-12-03T00:00:00Z"}},
		{Time: at, Event: EvForensics, Data: map[string]any{"dir": "/x/" + canary}},
		{Time: at, Event: state.EvVerify, Data: map[string]any{"checks": []any{map[string]any{"name": canary, "ok": false, "detail": quoted}}}},
		{Time: at, Event: state.EvApplyEnd, Generation: "g1", Outcome: "failed", Error: "boom " + canary + " " + quoted},
		{Time: at, Event: state.EvInvalid, Error: canary},
	}
	r := Build(entries, from, to)
	var md, js bytes.Buffer
	r.Markdown(&md)
	r.JSON(&js)
	hist, _ := json.Marshal(History(entries))
	for name, out := range map[string]string{"markdown": md.String(), "json": js.String(), "history": string(hist)} {
		if !strings.Contains(out, "***") {
			t.Errorf("%s: nothing was masked; is the canary in the input?", name)
		}
		for _, bad := range []string{"canary-report-9f8e7d6c", "quoted", "canary"} {
			if strings.Contains(out, bad) {
				t.Errorf("%s carries %q:\n%s", name, bad, out)
			}
		}
	}
}

func TestHistory(t *testing.T) {
	h := History(journal(t))
	if len(h) != 3 || h[0].Active != "blue" || h[1].Active != "green" || h[2].Snapshot != "cepcom_20261203_020000" || h[2].DurationMS != 48200 {
		t.Fatalf("history %+v", h)
	}
}

func TestDur(t *testing.T) {
	for ms, want := range map[float64]string{0: "", 8.9: "9ms", 402.7: "403ms", 1180.4: "1.2s", 45000: "45s", 125000: "2m5s"} {
		if got := dur(ms); got != want {
			t.Errorf("dur(%v) = %q, want %q", ms, got, want)
		}
	}
}
