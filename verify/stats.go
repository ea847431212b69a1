package verify

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Stats summarises the requests of a time window.
type Stats struct {
	From      time.Time     `json:"from"`
	To        time.Time     `json:"to"`
	Upstream  string        `json:"upstream,omitempty"`
	Requests  int           `json:"requests"`
	Errors    int           `json:"errors"` // 5xx answers
	ErrorRate float64       `json:"error_rate"`
	P50       time.Duration `json:"p50_ns"`
	P99       time.Duration `json:"p99_ns"`
}

// Window computes the stats of the hits in [from, to) answered by upstream
// ("" = every hit). A zero from or to leaves that end open.
func Window(hits []Hit, from, to time.Time, upstream string) Stats {
	s := Stats{From: from, To: to, Upstream: upstream}
	var durs []time.Duration
	for _, h := range hits {
		if (!from.IsZero() && h.Time.Before(from)) || (!to.IsZero() && !h.Time.Before(to)) {
			continue
		}
		if upstream != "" && h.Upstream != upstream {
			continue
		}
		s.Requests++
		if h.Status >= 500 && h.Status <= 599 {
			s.Errors++
		}
		durs = append(durs, h.Duration)
	}
	if s.Requests == 0 {
		return s
	}
	s.ErrorRate = float64(s.Errors) / float64(s.Requests)
	slices.Sort(durs)
	s.P50, s.P99 = rank(durs, 0.50), rank(durs, 0.99)
	return s
}

// rank is the nearest-rank percentile: a value that was really observed,
// so "p99 = 5s" means some request really took 5s.
func rank(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

// The runbook's decision matrix.
const (
	DefaultMaxErrorRate = 0.25
	DefaultMaxLatency   = 5 * time.Second
)

// Thresholds decide whether a window is healthy. Zero fields take the
// runbook's defaults; the limits themselves pass (25 % errors is not > 25 %).
type Thresholds struct {
	MaxErrorRate float64       `json:"max_error_rate"`
	MaxLatency   time.Duration `json:"max_latency_ns"` // against p99
	MinRequests  int           `json:"min_requests"`   // fewer: too little traffic to judge
}

func (t Thresholds) withDefaults() Thresholds {
	if t.MaxErrorRate <= 0 {
		t.MaxErrorRate = DefaultMaxErrorRate
	}
	if t.MaxLatency <= 0 {
		t.MaxLatency = DefaultMaxLatency
	}
	return t
}

// Check applies the decision matrix. Too little traffic is ok with a note:
// a quiet site at 3 a.m. must not hold a rollback back.
func (s Stats) Check(t Thresholds) (ok bool, why string) {
	t = t.withDefaults()
	summary := s.String()
	if s.Requests == 0 || s.Requests < t.MinRequests {
		return true, fmt.Sprintf("not enough traffic to judge: %d requests (need %d)", s.Requests, max(t.MinRequests, 1))
	}
	var bad []string
	if s.ErrorRate > t.MaxErrorRate {
		bad = append(bad, fmt.Sprintf("error rate %.1f%% > %.1f%%", 100*s.ErrorRate, 100*t.MaxErrorRate))
	}
	if s.P99 > t.MaxLatency {
		bad = append(bad, fmt.Sprintf("p99 %s > %s", s.P99, t.MaxLatency))
	}
	if len(bad) > 0 {
		return false, fmt.Sprintf("%s: %s", joinSemi(bad), summary)
	}
	return true, summary
}

func (s Stats) String() string {
	return fmt.Sprintf("%d requests, %d 5xx (%.1f%%), p50 %s, p99 %s", s.Requests, s.Errors, 100*s.ErrorRate, s.P50, s.P99)
}

func joinSemi(parts []string) string {
	out := parts[0]
	for _, p := range parts[1:] {
		out += "; " + p
	}
	return out
}
