package controller

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"settle/reconcilers"
)

// PlanJSON is the stable shape of `settle plan --format json`. Fields are
// only ever added.
type PlanJSON struct {
	InSync     bool           `json:"in_sync"`
	File       string         `json:"file"`
	Generation string         `json:"generation"`
	Commit     string         `json:"commit,omitempty"`
	Dirty      bool           `json:"dirty,omitempty"`
	ObservedAt time.Time      `json:"observed_at"`
	Resources  []ResourceJSON `json:"resources"`
}

// ResourceJSON is one resource of a plan.
type ResourceJSON struct {
	Kind    string   `json:"kind"`
	Name    string   `json:"name"`
	Status  string   `json:"status"`          // in_sync | drifted | unknown | error
	Cause   string   `json:"cause,omitempty"` // intended | drift, when not in sync
	Desired string   `json:"desired"`
	Actual  string   `json:"actual"`
	Reason  string   `json:"reason,omitempty"`
	Actions []string `json:"actions"`
}

// JSON converts a plan to its stable output shape.
func (p *Plan) JSON() PlanJSON {
	out := PlanJSON{InSync: p.InSync(), File: p.Desired.Path, Generation: p.Desired.Generation,
		Commit: p.Desired.Git.Commit, Dirty: p.Desired.Git.Dirty, ObservedAt: p.ObservedAt.UTC(),
		Resources: []ResourceJSON{}}
	for _, r := range p.Resources {
		rj := ResourceJSON{Kind: r.Kind, Name: r.Name, Status: string(r.Status), Cause: r.Cause,
			Desired: r.Desired, Actual: r.Actual, Reason: r.Reason, Actions: []string{}}
		for _, a := range r.Actions {
			rj.Actions = append(rj.Actions, a.Detail)
		}
		out.Resources = append(out.Resources, rj)
	}
	return out
}

// WritePlan renders p as text (terraform-like; color when color is true),
// json or markdown.
func WritePlan(w io.Writer, p *Plan, format string, color bool) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(p.JSON())
	case "markdown":
		return writeMarkdown(w, p)
	case "text", "":
		return writeText(w, p, color)
	}
	return fmt.Errorf("unknown format %q (use text, json or markdown)", format)
}

var marks = map[reconcilers.Status]string{
	reconcilers.InSync: "=", reconcilers.Drifted: "~", reconcilers.Unknown: "?", reconcilers.Failed: "!",
}

var colors = map[reconcilers.Status]string{
	reconcilers.InSync: "\x1b[32m", reconcilers.Drifted: "\x1b[33m", reconcilers.Unknown: "\x1b[35m", reconcilers.Failed: "\x1b[31m",
}

func writeText(w io.Writer, p *Plan, color bool) error {
	var b strings.Builder
	d := p.Desired
	fmt.Fprintf(&b, "%s: generation %s, commit %s, active %s\n\n", d.Path, short(d.Generation), d.Git.Short(), d.App.Active)
	for _, r := range p.Resources {
		mark := marks[r.Status]
		if color {
			mark = colors[r.Status] + mark + "\x1b[0m"
		}
		fmt.Fprintf(&b, "%s %s/%s: %s", mark, r.Kind, r.Name, r.Status)
		if r.Cause != "" {
			fmt.Fprintf(&b, " (%s)", r.Cause)
		}
		fmt.Fprintf(&b, "\n    desired: %s\n    actual:  %s\n", r.Desired, r.Actual)
		if r.Reason != "" {
			fmt.Fprintf(&b, "    reason:  %s\n", r.Reason)
		}
		for _, a := range r.Actions {
			fmt.Fprintf(&b, "    + %s\n", a.Detail)
		}
	}
	n := len(p.Actions())
	if p.InSync() {
		b.WriteString("\nIn sync: nothing to do.\n")
	} else {
		fmt.Fprintf(&b, "\nPlan: %d action(s) on %d resource(s) out of sync.\n", n, p.outOfSync())
	}
	_, err := io.WriteString(w, reconcilers.Redact(b.String()))
	return err
}

func writeMarkdown(w io.Writer, p *Plan) error {
	var b strings.Builder
	d := p.Desired
	state := "in sync"
	if !p.InSync() {
		state = fmt.Sprintf("**%d resource(s) out of sync**", p.outOfSync())
	}
	fmt.Fprintf(&b, "### settle plan: %s\n\n", state)
	fmt.Fprintf(&b, "`%s` generation `%s`, commit `%s`, observed %s\n\n", d.Path, short(d.Generation), d.Git.Short(), p.ObservedAt.UTC().Format(time.RFC3339))
	b.WriteString("| resource | status | desired | actual | actions |\n|---|---|---|---|---|\n")
	for _, r := range p.Resources {
		var acts []string
		for _, a := range r.Actions {
			acts = append(acts, a.Detail)
		}
		st := string(r.Status)
		if r.Cause != "" {
			st += " (" + r.Cause + ")"
		}
		actual := r.Actual
		if r.Reason != "" {
			actual += "; " + r.Reason
		}
		fmt.Fprintf(&b, "| `%s/%s` | %s | %s | %s | %s |\n", r.Kind, r.Name, st, cell(r.Desired), cell(actual), cell(strings.Join(acts, "; ")))
	}
	_, err := io.WriteString(w, reconcilers.Redact(b.String()))
	return err
}

func cell(s string) string {
	if s == "" {
		return "—"
	}
	return strings.NewReplacer("|", "\\|", "\n", " ").Replace(s)
}

func (p *Plan) outOfSync() int {
	n := 0
	for _, r := range p.Resources {
		if r.Status != reconcilers.InSync {
			n++
		}
	}
	return n
}

func short(gen string) string {
	if len(gen) > 12 {
		return gen[:12]
	}
	return gen
}

// WriteResult prints what an apply did, resource by resource.
func WriteResult(w io.Writer, res *Result) {
	var b strings.Builder
	if len(res.Outcomes) == 0 {
		fmt.Fprintf(&b, "In sync: nothing to do (generation %s).\n", short(res.Plan.Desired.Generation))
	}
	for _, o := range res.Outcomes {
		switch {
		case o.Err != "":
			fmt.Fprintf(&b, "! %s: failed after %s: %s\n", o.Resource, o.Took.Round(time.Millisecond), o.Err)
		case o.Skipped != "":
			fmt.Fprintf(&b, "- %s: skipped: %s\n", o.Resource, o.Skipped)
		case len(o.Done) > 0:
			fmt.Fprintf(&b, "+ %s: done in %s: %s\n", o.Resource, o.Took.Round(time.Millisecond), strings.Join(o.Done, "; "))
		}
	}
	if len(res.Outcomes) > 0 && res.Err == nil && res.After.InSync() {
		fmt.Fprintf(&b, "Converged to generation %s (active %s).\n", short(res.Plan.Desired.Generation), res.Plan.Desired.App.Active)
	}
	io.WriteString(w, reconcilers.Redact(b.String()))
}
