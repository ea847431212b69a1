package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// drainTimeout is how long a swap waits for the live database's sessions
// to end after they were told to; pools reconnect fast, and the block on
// new connections keeps them out meanwhile.
const drainTimeout = 5 * time.Second

// Swapped says what a swap did.
type Swapped struct {
	Kept    string        // the replaced database's new name; "" when there was none
	Blocked time.Duration // how long the live name refused connections
}

// Swap makes the scratch database, staged with (id, serial), the live one.
// Until the renames commit, the live database stays exactly as it was
// (connections allowed again) and the scratch database is dropped; the two
// renames and both markers commit in one transaction, so there is no
// moment with no database under the live name.
func (r *Reconciler) Swap(ctx context.Context, id string, serial int) (sw Swapped, err error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	p := r.D.Postgres
	live, scratch := p.Database, ScratchName(p.Database)
	want := Marker{Snapshot: id, Serial: serial}
	c, err := r.connect(ctx, "")
	if err != nil {
		return sw, err
	}
	defer c.Close(context.Background())
	if err := lockDB(ctx, c, r.D.Postgres.Database); err != nil {
		return sw, err
	}
	o, err := r.observeDBs(ctx, c)
	if err != nil {
		return sw, err
	}
	if o.Live.Marker.Role == RoleLive && o.Live.Marker.Same(want) {
		return sw, nil // done before a crash
	}
	if !o.Scratch.Exists || o.Scratch.Marker.Role != RoleStaged || !o.Scratch.Marker.Same(want) {
		return sw, fmt.Errorf("swap %s: %s does not hold a verified restore of %s (it has %s); restore first", live, scratch, want, o.Scratch.Marker)
	}
	fail := func(step string, e error) (Swapped, error) {
		e = fmt.Errorf("swap %s: %s: %w; %s is unchanged", live, step, e, live)
		if o.Live.Exists {
			// Always back to true: a crash in an earlier swap may have left
			// it false, and the app must never stay locked out.
			if uerr := setAllowConn(c, live, true); uerr != nil {
				e = errors.Join(e, fmt.Errorf("and re-allowing connections failed: %w; run ALTER DATABASE %s ALLOW_CONNECTIONS true", uerr, ident(live)))
			}
		}
		if derr := dropScratch(c, scratch); derr != nil {
			e = errors.Join(e, derr)
		}
		return Swapped{}, e
	}
	// Stray sessions on scratch (a crashed restore's) would block its rename.
	if err := terminate(ctx, c, scratch); err != nil {
		return fail("end sessions on "+scratch, err)
	}
	now := time.Now().UTC()
	kept := KeptName(live, now)
	for i := 2; exists(o, kept); i++ {
		kept = fmt.Sprintf("%s_%d", KeptName(live, now), i)
	}
	blocked := time.Now()
	if o.Live.Exists {
		if _, err := c.Exec(ctx, "ALTER DATABASE "+ident(live)+" ALLOW_CONNECTIONS false"); err != nil {
			return fail("block new connections", err)
		}
		if err := drain(ctx, c, live); err != nil {
			return fail("end sessions", err)
		}
	}
	tx, err := c.Begin(ctx)
	if err != nil {
		return fail("begin", err)
	}
	defer tx.Rollback(context.Background())
	stmts := []string{}
	if o.Live.Exists {
		old := o.Live.Marker
		km := Marker{Role: RoleKept, Snapshot: old.Snapshot, Serial: old.Serial, At: now}
		if old.Role != RoleLive {
			km.Snapshot = "unknown"
		}
		stmts = append(stmts,
			"ALTER DATABASE "+ident(live)+" RENAME TO "+ident(kept),
			"COMMENT ON DATABASE "+ident(kept)+" IS "+quoteLiteral(km.Format()),
			// Reachable for forensics; no pool knows its name.
			"ALTER DATABASE "+ident(kept)+" ALLOW_CONNECTIONS true")
	}
	lm := Marker{Role: RoleLive, Snapshot: id, Serial: serial, At: now, How: "swapped"}
	stmts = append(stmts,
		"ALTER DATABASE "+ident(scratch)+" RENAME TO "+ident(live),
		"COMMENT ON DATABASE "+ident(live)+" IS "+quoteLiteral(lm.Format()),
		"ALTER DATABASE "+ident(live)+" ALLOW_CONNECTIONS true")
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			tx.Rollback(context.Background())
			return fail("rename", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fail("commit renames", err)
	}
	sw.Blocked = time.Since(blocked)
	if o.Live.Exists {
		sw.Kept = kept
	}
	return sw, nil
}

func exists(o *Observed, name string) bool {
	for _, k := range o.Kept {
		if k.Name == name {
			return true
		}
	}
	return false
}

// drain ends every session on db and waits until none is left.
func drain(ctx context.Context, c *pgx.Conn, db string) error {
	ctx, cancel := context.WithTimeout(ctx, drainTimeout)
	defer cancel()
	for {
		if err := terminate(ctx, c, db); err != nil {
			return err
		}
		var n int
		if err := c.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", db).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d session(s) still open after %s", n, drainTimeout)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func terminate(ctx context.Context, c *pgx.Conn, db string) error {
	_, err := c.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", db)
	return err
}

func setAllowConn(c *pgx.Conn, db string, allow bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s ALLOW_CONNECTIONS %t", ident(db), allow))
	return err
}
