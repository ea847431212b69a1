package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"settle/reconcilers"
	"settle/snapshot"
)

// Apply performs one action of this reconciler's plan. Each re-reads what
// it needs, so it is safe to run again after a crash.
func (r *Reconciler) Apply(ctx context.Context, a reconcilers.Action) error {
	switch a.Op {
	case OpRestore, OpSwap:
		serial, err := serialArg(a)
		if err != nil {
			return err
		}
		if a.Op == OpRestore {
			_, err = r.Restore(ctx, a.Args["snapshot"], serial)
			return err
		}
		sw, err := r.Swap(ctx, a.Args["snapshot"], serial)
		if err == nil {
			r.noteSwap(ctx, a.Args["snapshot"], sw)
		}
		return err
	case OpAllow:
		return r.allowConnections(ctx)
	case OpDropKept:
		return r.dropKept(ctx, a.Args["db"])
	}
	return fmt.Errorf("postgres: unknown action %q", a.Op)
}

// dropKept drops a replaced database, after proving again that it is a
// kept one of this live database and past retention. A session open on it
// (someone doing forensics) makes this fail rather than cut them off.
func (r *Reconciler) dropKept(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	c, err := r.connect(ctx, "")
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	o, err := r.observeDBs(ctx, c)
	if err != nil {
		return err
	}
	for _, k := range o.Kept {
		if k.Name != name {
			continue
		}
		if k.KeptAt.IsZero() || time.Since(k.KeptAt) < KeepFor(r.D) {
			return fmt.Errorf("drop kept database %s: not past keep_replaced %s (kept at %s); leaving it", name, r.D.Postgres.KeepReplaced, k.KeptAt.Format(time.RFC3339))
		}
		if _, err := c.Exec(ctx, "DROP DATABASE "+ident(name)); err != nil {
			return fmt.Errorf("drop kept database %s: %w", name, err)
		}
		return nil
	}
	return nil // already gone: what the action wanted
}

// dropScratch removes the scratch database after a failed restore or swap.
// It runs on a fresh context: the one that failed may be the reason.
func dropScratch(c *pgx.Conn, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(name)+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop scratch database %s: %w", name, err)
	}
	return nil
}

// noteSwap tells the journal what an incident report's data-loss statement
// needs: where the replaced data is kept, until when, and how old the
// snapshot now live is.
func (r *Reconciler) noteSwap(ctx context.Context, id string, sw Swapped) {
	reconcilers.Note(ctx, "blocked_ms", sw.Blocked.Milliseconds())
	if sw.Kept != "" {
		reconcilers.Note(ctx, "kept_database", sw.Kept)
		reconcilers.Note(ctx, "kept_until", time.Now().Add(KeepFor(r.D)).UTC().Format(time.RFC3339))
	}
	if f, err := snapshot.Find(ctx, r.Host, r.D.Postgres.SnapshotDir, id); err == nil {
		created := f.ModTime
		if f.Manifest != nil && !f.Manifest.Created.IsZero() {
			created = f.Manifest.Created
		}
		reconcilers.Note(ctx, "snapshot_created", created.UTC().Format(time.RFC3339))
	}
}

// allowConnections undoes the block of a swap that never finished.
func (r *Reconciler) allowConnections(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := r.connect(ctx, "")
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	if err := setAllowConn(c, r.D.Postgres.Database, true); err != nil {
		return fmt.Errorf("allow connections to %s: %w", r.D.Postgres.Database, err)
	}
	return nil
}
