package report

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"settle/reconcilers"
)

// JSON writes the report as one indented object.
func (r *Report) JSON(w io.Writer) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	_, err = io.WriteString(w, reconcilers.Redact(string(b))+"\n")
	return err
}

// Markdown writes the report for a human, blanks first: an incident
// report is a document the on-call engineer finishes.
func (r *Report) Markdown(w io.Writer) error {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }

	p("# %s\n\n", r.Title)
	p("Written by `settle report` from the journal (%d entries in range). Fields marked %s are for the on-call engineer.\n\n", r.Entries, FillIn)
	p("| | |\n|---|---|\n")
	for _, f := range r.ToFill {
		v := f.Value
		if v == "" {
			v = FillIn
		}
		p("| %s | %s |\n", f.Label, cell(v))
	}

	p("\n## What changed\n\n")
	c := r.Changes
	switch {
	case len(c.Applies) == 0:
		p("No apply in this range.\n")
	default:
		p("- Active color: %s\n", walk(c.ActivePath, c.Before, c.After))
		p("- Snapshot: %s\n", walk(c.SnapshotPath, c.Before, c.After))
		p("- Generation: %s → %s\n", genField(c.Before, genName), genField(c.After, genName))
		if c.After == nil {
			p("\n**No apply converged in this range.**\n")
		}
		p("\n| applied | generation | commit | active | snapshot | outcome | duration |\n|---|---|---|---|---|---|---|\n")
		for _, g := range c.Applies {
			p("| %s | `%s` | %s | %s | %s | %s | %s |\n", stamp(g.Time), short(g.Generation, 12), cell(commit(g.Commit, g.Dirty)),
				cell(g.Active), cell(g.Snapshot), outcome(g.Outcome, g.Error), dur(g.DurationMS))
		}
	}

	p("\n## Timeline\n\n")
	if len(r.Timeline) == 0 {
		p("No journal entries in this range.\n")
	} else {
		p("| time | event | resource / op | outcome | duration | detail |\n|---|---|---|---|---|---|\n")
		for _, row := range r.Timeline {
			p("| %s | %s | %s | %s | %s | %s |\n", stamp(row.Time), row.Event, cell(row.What), cell(row.Outcome), dur(row.DurationMS), cell(row.Detail))
		}
	}

	p("\n## Actions\n\n")
	if len(r.Actions) == 0 {
		p("settle took no action in this range.\n")
	} else {
		p("| started | resource | op | outcome | duration | detail |\n|---|---|---|---|---|---|\n")
		for _, a := range r.Actions {
			p("| %s | %s/%s | %s | %s | %s | %s |\n", stamp(a.Time), cell(a.Kind), cell(a.Resource), cell(a.Op),
				outcome(a.Outcome, a.Error), dur(a.DurationMS), cell(a.Detail))
		}
	}

	p("\n## Data loss\n\n%s\n", r.DataLoss.Statement)
	for _, s := range r.DataLoss.Swaps {
		p("\n- %s\n", s.Statement)
	}
	for _, a := range r.DataLoss.FailedSwaps {
		p("\n- A swap of database %s %s at %s: check which database is live (`settle snapshot list`). %s\n", a.Resource, a.Outcome, stamp(a.Time), a.Error)
	}
	for _, a := range r.DataLoss.Flushes {
		p("\n- The Redis cache %s was flushed at %s (cache only; the app refills it).\n", a.Resource, stamp(a.Time))
	}
	if len(r.DataLoss.Forensics) == 0 {
		p("\nNo forensics were captured in this range.\n")
	} else {
		p("\nForensics (logs and configs from before the change) are in:\n\n")
		for _, d := range r.DataLoss.Forensics {
			p("- `%s`\n", d)
		}
	}

	p("\n## Verification\n\n")
	if len(r.Verification) == 0 {
		p("No verification was recorded in this range.\n")
	}
	for _, v := range r.Verification {
		p("### %s, generation `%s`: %s\n\n", stamp(v.Time), short(v.Generation, 12), or(v.Outcome, "no outcome recorded"))
		if v.Detail != "" {
			p("%s\n\n", v.Detail)
		}
		if len(v.Checks) == 0 {
			p("No checks recorded.\n\n")
			continue
		}
		p("| check | result | detail |\n|---|---|---|\n")
		for _, c := range v.Checks {
			res := "ok"
			if !c.OK {
				res = "**FAILED**"
			}
			p("| %s | %s | %s |\n", cell(c.Name), res, cell(c.Detail))
		}
		p("\n")
	}
	_, err := io.WriteString(w, reconcilers.Redact(strings.TrimRight(b.String(), "\n")+"\n"))
	return err
}

func genField(g *Gen, f func(*Gen) string) string {
	if g == nil {
		return "unknown"
	}
	return or(f(g), "none")
}

// walk prints a path, saying when its ends are not known.
func walk(path []string, before, after *Gen) string {
	if len(path) == 0 {
		return "unknown"
	}
	s := strings.Join(path, " → ")
	if before == nil {
		s = "unknown → " + s
	}
	if after == nil {
		s += " (no apply converged in this range)"
	} else if len(path) == 1 && before != nil {
		s += " (unchanged)"
	}
	return s
}

func genName(g *Gen) string {
	return "`" + short(g.Generation, 12) + "` (" + commit(g.Commit, g.Dirty) + ")"
}

func outcome(o, err string) string {
	if err != "" {
		return cell(o + ": " + err)
	}
	return cell(o)
}

// dur prints a journal duration; 0 means none was recorded.
func dur(ms float64) string {
	d := time.Duration(ms * float64(time.Millisecond))
	switch {
	case d <= 0:
		return ""
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "\r", " ", "\n", " ").Replace(s)
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
