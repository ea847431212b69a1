package verify

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"settle/reconcilers"
	"settle/reconcilers/nginx"
)

// Check is one line of the post-apply checklist, as journaled under
// Data["checks"] of a verify entry.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// Results is a checklist.
type Results []Check

// OK is true when every check passed.
func (rs Results) OK() bool {
	for _, c := range rs {
		if !c.OK {
			return false
		}
	}
	return true
}

// Failed lists the checks that did not pass.
func (rs Results) Failed() Results {
	var out Results
	for _, c := range rs {
		if !c.OK {
			out = append(out, c)
		}
	}
	return out
}

// Redacted returns rs with every detail passed through Redact: a health
// answer or an error can quote a DSN.
func (rs Results) Redacted() Results {
	out := make(Results, len(rs))
	for i, c := range rs {
		out[i] = Check{Name: reconcilers.Redact(c.Name), OK: c.OK, Detail: reconcilers.Redact(c.Detail)}
	}
	return out
}

// ResultsOf decodes the checks of a journal entry's Data["checks"], which
// is Results when in memory and []any of maps once read back from JSON.
func ResultsOf(v any) (Results, error) {
	if rs, ok := v.(Results); ok {
		return rs, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("decode checks: %w", err)
	}
	var rs Results
	if err := json.Unmarshal(b, &rs); err != nil {
		return nil, fmt.Errorf("decode checks: %w", err)
	}
	return rs, nil
}

// ColorHealthy checks a color's own health URL answered 200 and, when the
// answer names a color, that it is this one (a port pointing at the other
// release is the classic half-rollback).
func ColorHealthy(color string, p reconcilers.Probe) Check {
	c := Check{Name: "health " + color}
	switch got := nginx.ColorOf(p.Body); {
	case !p.OK():
		c.Detail = p.String()
	case got != "" && got != color:
		c.Detail = fmt.Sprintf("HTTP 200 in %s but the answer names %s", ms(p.Took), got)
	default:
		c.OK, c.Detail = true, fmt.Sprintf("HTTP 200 in %s", ms(p.Took))
	}
	return c
}

// ThroughNginx checks the verify URL, fetched through nginx, is answered
// by the wanted color: a reload can fail silently and keep the old one.
func ThroughNginx(url, want string, p reconcilers.Probe) Check {
	c := Check{Name: "nginx serves " + want}
	got := nginx.ColorOf(p.Body)
	switch {
	case !p.OK():
		c.Detail = fmt.Sprintf("%s: %s", url, p)
	case got == "":
		c.Detail = fmt.Sprintf("%s: HTTP 200 but the answer names no color", url)
	case got != want:
		c.Detail = fmt.Sprintf("%s: answered by %s, want %s", url, got, want)
	default:
		c.OK, c.Detail = true, fmt.Sprintf("%s: answered by %s in %s", url, got, ms(p.Took))
	}
	return c
}

// RowCounts compares a database's per-table row counts with a snapshot
// manifest's. A table on one side only is a mismatch too: the restore
// must hold what was dumped, no more and no less.
func RowCounts(expected, actual map[string]int64) Check {
	c := Check{Name: "row counts"}
	var bad []string
	for _, t := range sortedKeys(expected, actual) {
		want, inWant := expected[t]
		have, inHave := actual[t]
		switch {
		case !inHave:
			bad = append(bad, fmt.Sprintf("%s: want %d, table missing", t, want))
		case !inWant:
			bad = append(bad, fmt.Sprintf("%s: %d rows, not in the manifest", t, have))
		case want != have:
			bad = append(bad, fmt.Sprintf("%s: want %d, have %d", t, want, have))
		}
	}
	if len(bad) > 0 {
		c.Detail = fmt.Sprintf("%d of %d tables differ: %s", len(bad), len(expected), strings.Join(bad, "; "))
		return c
	}
	c.OK, c.Detail = true, fmt.Sprintf("%d tables match the manifest", len(expected))
	return c
}

// Traffic checks a window of the access log against the decision matrix.
func Traffic(name string, s Stats, t Thresholds) Check {
	ok, why := s.Check(t)
	return Check{Name: name, OK: ok, Detail: why}
}

func sortedKeys(ms ...map[string]int64) []string {
	var out []string
	for _, m := range ms {
		for k := range m {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }
