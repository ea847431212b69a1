package redis

import (
	"fmt"

	"settle/desired"
	"settle/reconcilers"
)

// Plan compares the cache's marker with the desired snapshot. Pure.
//
// A missing marker means settle never managed this cache, so nothing says
// it matches the database: that is drift, and apply flushes and marks it.
// An empty cache costs a warm-up; a cache from other data serves wrong
// answers.
func Plan(d *desired.Desired, o *Observed) reconcilers.Resource {
	res := reconcilers.Resource{Kind: Kind, Name: Name(d), Status: reconcilers.InSync}
	if !managed(d) || !o.Managed {
		res.Desired = "not managed (flush_on_snapshot_change is off)"
		res.Actual = "not read"
		return res
	}
	want := WantMarker(d)
	scope, what := "db", fmt.Sprintf("FLUSHDB ASYNC on db %d", d.Redis.DB)
	if p := d.Redis.KeyPrefix; p != "" {
		scope, what = "prefix", fmt.Sprintf("UNLINK every %s* key (SCAN) in db %d", p, d.Redis.DB)
	}
	res.Desired = "cache of snapshot " + want
	switch {
	case !o.HasMarker:
		res.Actual = "no marker: settle never flushed this cache, so it may hold another snapshot's data"
	case o.Marker == want:
		res.Actual = "cache of snapshot " + o.Marker
		return res
	default:
		res.Actual = "cache of snapshot " + o.Marker
	}
	res.Status = reconcilers.Drifted
	res.Actions = []reconcilers.Action{{Kind: Kind, Resource: res.Name, Op: OpFlush,
		Detail: fmt.Sprintf("%s, then SET %s %q", what, MarkerKey(d), want),
		Args:   map[string]string{"marker": want, "scope": scope, "prefix": d.Redis.KeyPrefix}}}
	return res
}
