package state

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"settle/desired"
	"settle/reconcilers"
)

// Journal events.
const (
	EvApplyBegin  = "apply-begin"
	EvApplyEnd    = "apply-end"
	EvActionBegin = "action-begin"
	EvActionEnd   = "action-end"
	EvInvalid     = "invalid"     // the desired file was rejected
	EvDrift       = "drift"       // drift seen (report mode or before repair)
	EvInterrupted = "interrupted" // an action began and never ended (crash)
	EvVerify      = "verify"
	EvHeld        = "held"
	EvAgentStart  = "agent-start"
	EvAgentStop   = "agent-stop"
	EvForensics   = "forensics"
)

// Entry is one line of journal.jsonl. Text fields pass Redact.
type Entry struct {
	Time       time.Time      `json:"time"`
	Event      string         `json:"event"`
	Generation string         `json:"generation,omitempty"`
	Commit     string         `json:"commit,omitempty"`
	Dirty      bool           `json:"dirty,omitempty"`
	Active     string         `json:"active,omitempty"`
	Snapshot   string         `json:"snapshot,omitempty"`
	Kind       string         `json:"kind,omitempty"`
	Resource   string         `json:"resource,omitempty"`
	Op         string         `json:"op,omitempty"`
	Detail     string         `json:"detail,omitempty"`
	DurationMS float64        `json:"duration_ms,omitempty"`
	Outcome    string         `json:"outcome,omitempty"` // ok | failed | skipped
	Error      string         `json:"error,omitempty"`
	Data       map[string]any `json:"data,omitempty"`
}

// Journal appends entries to STATE_DIR/journal.jsonl, fsync'd one by one:
// it is the record an incident report is written from.
type Journal struct {
	mu   sync.Mutex
	path string
}

// OpenJournal prepares the journal in dir.
func OpenJournal(dir string) (*Journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return &Journal{path: filepath.Join(dir, "journal.jsonl")}, nil
}

// Path is where the journal lives.
func (j *Journal) Path() string { return j.path }

// Append writes e. A journal that cannot be written is reported to the
// caller, who logs it; it never stops a rollback.
func (j *Journal) Append(e Entry) error {
	if j == nil {
		return nil
	}
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	e.Detail = reconcilers.Redact(e.Detail)
	e.Error = reconcilers.Redact(e.Error)
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	f, err := os.OpenFile(j.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Write(append(b, '\n')); err != nil {
		return err
	}
	return f.Sync()
}

// Stamp fills the generation fields of e from d.
func Stamp(e Entry, d *desired.Desired) Entry {
	if d == nil {
		return e
	}
	e.Generation, e.Commit, e.Dirty, e.Active = d.Generation, d.Git.Commit, d.Git.Dirty, d.App.Active
	if d.Postgres != nil {
		e.Snapshot = d.Postgres.Snapshot
	}
	return e
}

// Begin and End make the journal a controller.Recorder.
func (j *Journal) Begin(d *desired.Desired, a reconcilers.Action) {
	j.Append(Stamp(Entry{Event: EvActionBegin, Kind: a.Kind, Resource: a.Resource, Op: a.Op, Detail: a.Detail}, d))
}

func (j *Journal) End(d *desired.Desired, a reconcilers.Action, took time.Duration, err error, notes map[string]any) {
	e := Stamp(Entry{Event: EvActionEnd, Kind: a.Kind, Resource: a.Resource, Op: a.Op, Detail: a.Detail,
		DurationMS: ms(took), Outcome: "ok", Data: notes}, d)
	if err != nil {
		e.Outcome, e.Error = "failed", err.Error()
	}
	j.Append(e)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// ReadJournal returns every entry in dir's journal; a torn last line (a
// crash mid-write) is skipped, not fatal.
func ReadJournal(dir string) ([]Entry, error) {
	f, err := os.Open(filepath.Join(dir, "journal.jsonl"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Entry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		var e Entry
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			out = append(out, e)
		}
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("read journal: %w", err)
	}
	return out, nil
}

// Interrupted returns the action-begin entries that have no matching end:
// actions a crash cut short. Observation decides what became of them.
func Interrupted(entries []Entry) []Entry {
	open := map[string]Entry{}
	var order []string
	for _, e := range entries {
		k := e.Generation + "|" + e.Kind + "|" + e.Resource + "|" + e.Op
		switch e.Event {
		case EvActionBegin:
			if _, ok := open[k]; !ok {
				order = append(order, k)
			}
			open[k] = e
		case EvActionEnd, EvInterrupted:
			delete(open, k)
		}
	}
	var out []Entry
	for _, k := range order {
		if e, ok := open[k]; ok {
			out = append(out, e)
		}
	}
	return out
}
