// Package report writes the incident report of a rollback from the
// journal: timeline, what changed, actions, data loss and verification.
package report

import (
	"fmt"
	"sort"
	"time"

	"settle/reconcilers"
	"settle/state"
	"settle/verify"
)

// EvForensics is the journal event of a forensics capture; Data["dir"]
// says where it is.
const EvForensics = "forensics"

// FillIn marks what only the on-call engineer can write.
const FillIn = "_(fill in)_"

// Report is an incident report. Its JSON form is stable: every section is
// always present, empty lists are [].
type Report struct {
	Title        string         `json:"title"`
	From         time.Time      `json:"from"`
	To           time.Time      `json:"to"`
	Entries      int            `json:"entries"` // journal entries in range
	ToFill       []Field        `json:"to_fill"`
	Changes      Changes        `json:"changes"`
	Timeline     []Row          `json:"timeline"`
	Actions      []Action       `json:"actions"`
	DataLoss     DataLoss       `json:"data_loss"`
	Verification []Verification `json:"verification"`
}

// Field is a blank the operator fills; Value is "" until then.
type Field struct {
	Name  string `json:"name"`
	Label string `json:"label"`
	Value string `json:"value"`
}

// Row is one line of the timeline; an action's begin and end are one row.
type Row struct {
	Time       time.Time `json:"time"`
	Event      string    `json:"event"`
	What       string    `json:"what,omitempty"`
	Outcome    string    `json:"outcome,omitempty"`
	DurationMS float64   `json:"duration_ms,omitempty"`
	Detail     string    `json:"detail,omitempty"`
}

// Gen is the state one apply drove the machine to.
type Gen struct {
	Time       time.Time `json:"time"`
	Generation string    `json:"generation"`
	Commit     string    `json:"commit,omitempty"`
	Dirty      bool      `json:"dirty"`
	Active     string    `json:"active,omitempty"`
	Snapshot   string    `json:"snapshot,omitempty"`
	Outcome    string    `json:"outcome,omitempty"`
	DurationMS float64   `json:"duration_ms,omitempty"`
	Error      string    `json:"error,omitempty"`
}

// Changes is the machine before the first apply of the range and after
// the last one that converged; nil when the journal does not say.
type Changes struct {
	Before  *Gen  `json:"before"`
	After   *Gen  `json:"after"`
	Applies []Gen `json:"applies"`
	// The colors and snapshots the machine went through, repeats folded:
	// a deploy and its rollback read blue → green → blue, not blue → blue.
	ActivePath   []string `json:"active_path"`
	SnapshotPath []string `json:"snapshot_path"`
}

// Action is one action from begin to end.
type Action struct {
	Time       time.Time `json:"time"`
	Kind       string    `json:"kind"`
	Resource   string    `json:"resource"`
	Op         string    `json:"op"`
	Detail     string    `json:"detail,omitempty"`
	Outcome    string    `json:"outcome"` // ok | failed | skipped | unfinished
	DurationMS float64   `json:"duration_ms,omitempty"`
	Error      string    `json:"error,omitempty"`
	EndTime    time.Time `json:"end_time,omitzero"`
}

// DataLoss says which writes a rollback took out of the live database and
// where they are kept.
type DataLoss struct {
	Statement   string   `json:"statement"`
	Swaps       []Swap   `json:"swaps"`
	FailedSwaps []Action `json:"failed_swaps"`
	Flushes     []Action `json:"cache_flushes"`
	Forensics   []string `json:"forensics"`
}

// Swap is a database replaced by a snapshot.
type Swap struct {
	Time            time.Time  `json:"time"`
	Database        string     `json:"database"`
	Snapshot        string     `json:"snapshot"`
	SnapshotCreated *time.Time `json:"snapshot_created"`
	KeptDatabase    string     `json:"kept_database"`
	KeptUntil       string     `json:"kept_until"`
	Statement       string     `json:"statement"`
}

// Verification is one verify entry's checklist.
type Verification struct {
	Time       time.Time      `json:"time"`
	Generation string         `json:"generation,omitempty"`
	Outcome    string         `json:"outcome,omitempty"`
	Detail     string         `json:"detail,omitempty"`
	Checks     verify.Results `json:"checks"`
}

// Build writes the report of the entries in [from, to]. It reads every
// entry, not only those in range, to know what was live before.
func Build(entries []state.Entry, from, to time.Time) *Report {
	from, to = from.UTC(), to.UTC()
	r := &Report{
		Title: fmt.Sprintf("Incident report: %s to %s", stamp(from), stamp(to)),
		From:  from, To: to,
		ToFill: []Field{
			{"incident_commander", "Incident commander", ""},
			{"detection_time", "Detection time", ""},
			{"root_cause", "Root cause", ""},
			{"customer_impact", "Customer impact", ""},
			{"follow_ups", "Follow-ups", ""},
		},
		Changes:      Changes{Applies: []Gen{}, ActivePath: []string{}, SnapshotPath: []string{}},
		Timeline:     []Row{},
		Actions:      []Action{},
		DataLoss:     DataLoss{Swaps: []Swap{}, FailedSwaps: []Action{}, Flushes: []Action{}, Forensics: []string{}},
		Verification: []Verification{},
	}
	all := make([]state.Entry, len(entries))
	for i, e := range entries {
		all[i] = redactEntry(e)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Time.Before(all[j].Time) })
	var in []state.Entry
	for _, e := range all {
		if !e.Time.Before(from) && !e.Time.After(to) {
			in = append(in, e)
		}
	}
	r.Entries = len(in)
	r.timeline(in)
	r.changes(all, in)
	r.dataLoss(in)
	return r
}

// timeline fills Timeline, Actions and Verification in one pass so an
// action's row and its Action agree.
func (r *Report) timeline(in []state.Entry) {
	open := map[string]int{} // action key -> index in Actions
	rowOf := map[int]int{}   // index in Actions -> index in Timeline
	for _, e := range in {
		key := e.Generation + "|" + e.Kind + "|" + e.Resource + "|" + e.Op
		switch e.Event {
		case state.EvActionBegin:
			open[key] = len(r.Actions)
			rowOf[len(r.Actions)] = len(r.Timeline)
			r.Actions = append(r.Actions, Action{Time: e.Time, Kind: e.Kind, Resource: e.Resource, Op: e.Op, Detail: e.Detail, Outcome: "unfinished"})
			r.Timeline = append(r.Timeline, Row{Time: e.Time, Event: "action", What: what(e), Outcome: "unfinished", Detail: e.Detail})
			continue
		case state.EvActionEnd:
			i, ok := open[key]
			if !ok { // began before the range
				i = len(r.Actions)
				rowOf[i] = len(r.Timeline)
				r.Actions = append(r.Actions, Action{Time: e.Time, Kind: e.Kind, Resource: e.Resource, Op: e.Op, Detail: e.Detail})
				r.Timeline = append(r.Timeline, Row{Time: e.Time, Event: "action", What: what(e), Detail: e.Detail})
			}
			delete(open, key)
			a := &r.Actions[i]
			a.Outcome, a.DurationMS, a.Error, a.EndTime = e.Outcome, e.DurationMS, e.Error, e.Time
			row := &r.Timeline[rowOf[i]]
			row.Outcome, row.DurationMS, row.Detail = e.Outcome, e.DurationMS, detail(e)
			continue
		case state.EvVerify:
			v := Verification{Time: e.Time, Generation: e.Generation, Outcome: e.Outcome, Detail: e.Detail, Checks: verify.Results{}}
			if rs, err := verify.ResultsOf(e.Data["checks"]); err == nil && rs != nil {
				v.Checks = rs.Redacted()
			}
			r.Verification = append(r.Verification, v)
		case state.EvApplyBegin, state.EvApplyEnd, state.EvInvalid, state.EvHeld, state.EvDrift,
			state.EvInterrupted, EvForensics, state.EvAgentStart, state.EvAgentStop:
		default:
			continue
		}
		r.Timeline = append(r.Timeline, Row{Time: e.Time, Event: e.Event, What: what(e), Outcome: e.Outcome, DurationMS: e.DurationMS, Detail: detail(e)})
	}
}

func what(e state.Entry) string {
	switch {
	case e.Kind != "":
		s := e.Kind + "/" + e.Resource
		if e.Op != "" {
			s += " " + e.Op
		}
		return s
	case e.Generation != "":
		return "generation " + short(e.Generation, 12) + " (" + commit(e.Commit, e.Dirty) + ")"
	}
	return ""
}

func detail(e state.Entry) string {
	d := e.Detail
	if e.Event == EvForensics {
		if dir, _ := e.Data["dir"].(string); dir != "" {
			d = join(d, "in "+dir)
		}
	}
	if e.Event == state.EvVerify {
		if rs, err := verify.ResultsOf(e.Data["checks"]); err == nil && len(rs) > 0 {
			d = join(d, fmt.Sprintf("%d of %d checks failed", len(rs.Failed()), len(rs)))
		}
	}
	if e.Error != "" {
		d = join(d, "error: "+e.Error)
	}
	return d
}

func (r *Report) changes(all, in []state.Entry) {
	first := time.Time{}
	for _, e := range in {
		if e.Event == state.EvApplyBegin || e.Event == state.EvApplyEnd {
			first = e.Time
			break
		}
	}
	for _, e := range in {
		if e.Event == state.EvApplyEnd {
			g := genOf(e)
			r.Changes.Applies = append(r.Changes.Applies, g)
			if e.Outcome == "ok" {
				r.Changes.After = &g
			}
		}
	}
	if first.IsZero() {
		return
	}
	// Before: the last convergence before the first apply of the range,
	// else what the agent started serving.
	var before, started *state.Entry
	for i := range all {
		e := &all[i]
		if !e.Time.Before(first) {
			break
		}
		switch {
		case e.Event == state.EvApplyEnd && e.Outcome == "ok":
			before = e
		case e.Event == state.EvAgentStart && e.Generation != "":
			started = e
		}
	}
	if before == nil {
		before = started
	}
	if before != nil {
		g := genOf(*before)
		r.Changes.Before = &g
	}
	path := func(p []string, v string) []string {
		if v == "" || (len(p) > 0 && p[len(p)-1] == v) {
			return p
		}
		return append(p, v)
	}
	c := &r.Changes
	for _, g := range append([]Gen{ptrOr(c.Before)}, c.Applies...) {
		if g.Outcome == "ok" {
			c.ActivePath, c.SnapshotPath = path(c.ActivePath, g.Active), path(c.SnapshotPath, g.Snapshot)
		}
	}
}

func ptrOr(g *Gen) Gen {
	if g == nil {
		return Gen{}
	}
	return *g
}

func genOf(e state.Entry) Gen {
	return Gen{Time: e.Time, Generation: e.Generation, Commit: e.Commit, Dirty: e.Dirty, Active: e.Active,
		Snapshot: e.Snapshot, Outcome: e.Outcome, DurationMS: e.DurationMS, Error: e.Error}
}

func (r *Report) dataLoss(in []state.Entry) {
	d := &r.DataLoss
	for _, e := range in {
		switch {
		case e.Event == EvForensics:
			if dir, _ := e.Data["dir"].(string); dir != "" {
				d.Forensics = append(d.Forensics, dir)
			}
		case e.Event != state.EvActionEnd:
		case e.Kind == "postgres" && e.Op == "swap" && e.Outcome == "ok":
			d.Swaps = append(d.Swaps, swapOf(e))
		case e.Kind == "postgres" && e.Op == "swap":
			d.FailedSwaps = append(d.FailedSwaps, Action{Time: e.Time, Kind: e.Kind, Resource: e.Resource, Op: e.Op,
				Detail: e.Detail, Outcome: e.Outcome, DurationMS: e.DurationMS, Error: e.Error})
		case e.Kind == "redis" && e.Op == "flush" && e.Outcome == "ok":
			d.Flushes = append(d.Flushes, Action{Time: e.Time, Kind: e.Kind, Resource: e.Resource, Op: e.Op,
				Detail: e.Detail, Outcome: e.Outcome, DurationMS: e.DurationMS})
		}
	}
	if len(d.Swaps) == 0 {
		d.Statement = "No database was replaced: no data loss from settle's actions."
		return
	}
	d.Statement = fmt.Sprintf("%d database swap(s) replaced live data; the writes listed below are not in the live database.", len(d.Swaps))
}

func swapOf(e state.Entry) Swap {
	s := Swap{Time: e.Time, Database: e.Resource, Snapshot: e.Snapshot}
	if v, _ := e.Data["snapshot"].(string); v != "" {
		s.Snapshot = v
	}
	if v, _ := e.Data["snapshot_created"].(string); v != "" {
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			t = t.UTC()
			s.SnapshotCreated = &t
		}
	}
	s.KeptDatabase, _ = e.Data["kept_database"].(string)
	s.KeptUntil, _ = e.Data["kept_until"].(string)
	if t, err := time.Parse(time.RFC3339, s.KeptUntil); err == nil {
		s.KeptUntil = stamp(t)
	}
	since := "the snapshot was taken (its creation time is not recorded)"
	if s.SnapshotCreated != nil {
		since = stamp(*s.SnapshotCreated)
	}
	s.Statement = fmt.Sprintf("At %s database %s was replaced by snapshot %s. Writes made between %s and %s are not in the live database; ",
		stamp(s.Time), s.Database, s.Snapshot, since, stamp(s.Time))
	if s.KeptDatabase != "" {
		until := s.KeptUntil
		if until == "" {
			until = "its retention ends (not recorded)"
		}
		s.Statement += fmt.Sprintf("they are kept in database %s until %s.", s.KeptDatabase, until)
	} else {
		s.Statement += "the journal does not name the database that keeps them: check `settle snapshot list` before its retention ends."
	}
	return s
}

// redactEntry masks every text an entry carries: the journal redacts
// Detail and Error when written, but with the secrets known then.
func redactEntry(e state.Entry) state.Entry {
	red := reconcilers.Redact
	e.Detail, e.Error, e.Resource, e.Op, e.Kind = red(e.Detail), red(e.Error), red(e.Resource), red(e.Op), red(e.Kind)
	e.Snapshot, e.Commit, e.Active, e.Event = red(e.Snapshot), red(e.Commit), red(e.Active), red(e.Event)
	if e.Data != nil {
		d := make(map[string]any, len(e.Data))
		for k, v := range e.Data {
			if s, ok := v.(string); ok {
				v = red(s)
			}
			d[k] = v
		}
		e.Data = d
	}
	return e
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") }

func short(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func commit(c string, dirty bool) string {
	if c == "" {
		c = "no git"
	} else {
		c = "commit " + short(c, 10)
	}
	if dirty {
		c += ", dirty"
	}
	return c
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
