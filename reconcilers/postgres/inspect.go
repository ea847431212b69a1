package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"settle/reconcilers"
)

// RowCounts counts the rows of every table in the live database, in one
// read-only snapshot, for the post-apply checklist.
func (r *Reconciler) RowCounts(ctx context.Context) (map[string]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	c, err := r.connect(ctx, r.D.Postgres.Database)
	if err != nil {
		return nil, err
	}
	defer c.Close(context.Background())
	tx, err := c.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("count rows: begin: %w", err)
	}
	defer tx.Rollback(context.Background())
	return countRows(ctx, tx)
}

// Dump returns a custom-format dump of db (a kept, replaced database) for
// forensics. It runs after the cut, from the kept copy, so it never
// lengthens the outage.
func (r *Reconciler) Dump(ctx context.Context, db string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, dumpTimeout)
	defer cancel()
	env, err := r.toolEnv(db)
	if err != nil {
		return nil, err
	}
	out, err := r.Host.Run(ctx, reconcilers.Cmd{Argv: []string{r.bin("pg_dump"), "-Fc", "--no-password", "-d", db}, Env: env, SecretStdout: true})
	if err != nil {
		return nil, fmt.Errorf("dump %s: %w", db, err)
	}
	return out, nil
}
