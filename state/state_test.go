package state

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"settle/desired"
	"settle/reconcilers"
)

func TestLockIsExclusive(t *testing.T) {
	dir := t.TempDir()
	l, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Acquire(dir); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "pid") {
		t.Fatalf("second lock: %v, want ErrLocked naming the holder", err)
	}
	l.Release()
	l2, err := Acquire(dir)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	l2.Release()
}

func TestJournalRoundTripRedactsAndSurvivesATornLine(t *testing.T) {
	dir := t.TempDir()
	j, err := OpenJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	reconcilers.AddSecret("canary-journal-5b1")
	d := &desired.Desired{Generation: "g1", App: desired.App{Active: "blue"}}
	a := reconcilers.Action{Kind: "pm2", Resource: "demo-blue", Op: "start", Detail: "start"}
	j.Begin(d, a)
	j.End(d, a, 1500*time.Millisecond, errors.New("boom with canary-journal-5b1"), map[string]any{"k": "v"})
	f, _ := os.OpenFile(filepath.Join(dir, "journal.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"time":"2026-12-03T03:00:00Z","event":"action-beg`) // a crash mid-write
	f.Close()
	entries, err := ReadJournal(dir)
	if err != nil || len(entries) != 2 {
		t.Fatalf("read %d entries, err %v; want 2 (the torn line skipped)", len(entries), err)
	}
	end := entries[1]
	if end.Outcome != "failed" || end.DurationMS != 1500 || end.Data["k"] != "v" || end.Generation != "g1" {
		t.Errorf("end entry %+v", end)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "journal.jsonl"))
	if strings.Contains(string(b), "canary-journal-5b1") {
		t.Error("the journal holds a registered secret")
	}
	if fi, _ := os.Stat(filepath.Join(dir, "journal.jsonl")); fi.Mode().Perm() != 0o600 {
		t.Errorf("journal mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestInterruptedFindsBeginsWithoutEnds(t *testing.T) {
	e := func(ev, op string) Entry {
		return Entry{Event: ev, Generation: "g", Kind: "nginx", Resource: "app", Op: op}
	}
	got := Interrupted([]Entry{
		e(EvActionBegin, "write"), e(EvActionEnd, "write"),
		e(EvActionBegin, "reload"), // the crash
	})
	if len(got) != 1 || got[0].Op != "reload" {
		t.Fatalf("interrupted %+v, want the reload", got)
	}
	if got := Interrupted([]Entry{e(EvActionBegin, "reload"), e(EvInterrupted, "reload")}); len(got) != 0 {
		t.Fatalf("an interruption already reported is reported again: %+v", got)
	}
}
