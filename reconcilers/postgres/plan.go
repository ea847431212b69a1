package postgres

import (
	"fmt"
	"strconv"
	"time"

	"settle/desired"
	"settle/reconcilers"
)

// AdoptHint is the command that tells settle which snapshot an unmarked
// live database holds.
func AdoptHint(d *desired.Desired) string {
	return fmt.Sprintf("settle snapshot adopt -f %s %s", d.Path, d.Postgres.Snapshot)
}

// Plan compares the live database's marker with the desired snapshot and
// serial. Pure: o.At stands for now. The actions, in order: restore (unless
// the scratch database is already staged with this snapshot and serial),
// swap, then drop-kept for each kept database past keep_replaced.
func Plan(d *desired.Desired, o *Observed) reconcilers.Resource {
	p := d.Postgres
	want := Want(d)
	res := reconcilers.Resource{Kind: Kind, Name: p.Database, Status: reconcilers.InSync,
		Desired: fmt.Sprintf("snapshot %s (serial %d) live", p.Snapshot, p.RestoreSerial)}
	args := map[string]string{"snapshot": p.Snapshot, "serial": strconv.Itoa(p.RestoreSerial), "scratch": ScratchName(p.Database)}
	act := func(op, detail string, args map[string]string) {
		res.Actions = append(res.Actions, reconcilers.Action{Kind: Kind, Resource: p.Database, Op: op, Detail: detail, Args: args})
	}
	live := o.Live
	switch {
	case !live.Exists:
		res.Actual = "database missing"
	case live.Marker.Role != RoleLive:
		res.Actual = "unknown snapshot (no settle marker)"
		res.Status = reconcilers.Unknown
		res.Reason = fmt.Sprintf("database %s has no settle marker, so settle cannot tell which snapshot it holds and will not replace it by surprise. "+
			"If it holds %s: %s. To have apply replace it with %s (the current data is kept for %s): settle snapshot adopt -f %s pre-settle",
			p.Database, p.Snapshot, AdoptHint(d), p.Snapshot, p.KeepReplaced, d.Path)
		return res
	default:
		res.Actual = "snapshot " + live.Marker.String() + " live"
	}
	if live.Exists && !live.AllowConn {
		// Only a swap blocks connections, and only until its renames
		// commit: a live database still refusing them was left so by a
		// swap cut short (crash, dropped tunnel), and the app is locked out.
		res.Actual += "; refusing connections"
		act(OpAllow, fmt.Sprintf("ALTER DATABASE %s ALLOW_CONNECTIONS true: a swap cut short left it refusing the app", p.Database), nil)
	}
	staged := o.Scratch.Exists && o.Scratch.Marker.Role == RoleStaged && o.Scratch.Marker.Same(want)
	if !live.Exists || !live.Marker.Same(want) {
		if !staged {
			if o.FileErr != nil || o.File == nil {
				res.Status = reconcilers.Failed
				res.Reason = fmt.Sprintf("cannot restore snapshot %s: %v", p.Snapshot, o.FileErr)
				return res
			}
			act(OpRestore, fmt.Sprintf("restore %s (%s, %s) into %s, verify; traffic keeps flowing to %s",
				p.Snapshot, o.File.Format, size(o.File.Size), args["scratch"], p.Database), args)
		} else {
			res.Actual += fmt.Sprintf("; %s staged in %s", want, o.Scratch.Name)
		}
		swap := fmt.Sprintf("swap %s in as %s: block and end its sessions, rename", args["scratch"], p.Database)
		if live.Exists {
			swap += fmt.Sprintf(", keep the replaced database as %s__kept_<time> for %s", p.Database, p.KeepReplaced)
		}
		act(OpSwap, swap, args)
	}
	keep := KeepFor(d)
	for _, k := range o.Kept {
		switch {
		case k.Marker.Role != RoleKept:
			// Named like a kept database but not marked by settle: someone's
			// own copy. Never dropped by surprise.
			res.Actual += fmt.Sprintf("; %s looks kept but is not settle's (no marker), never dropped", k.Name)
		case k.KeptAt.IsZero():
			res.Actual += fmt.Sprintf("; kept %s (swap time unknown, never dropped)", k.Name)
		case o.At.Sub(k.KeptAt) >= keep:
			act(OpDropKept, fmt.Sprintf("drop %s: kept since %s, past keep_replaced %s", k.Name, k.KeptAt.Format(time.RFC3339), p.KeepReplaced),
				map[string]string{"db": k.Name})
		}
	}
	if len(res.Actions) > 0 {
		res.Status = reconcilers.Drifted
	}
	return res
}

func size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", (n+1023)/1024)
}
