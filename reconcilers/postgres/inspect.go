package postgres

import (
	"context"
	"fmt"
	"io"
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

// Dump streams a custom-format dump of db (a kept, replaced database) into
// w, for forensics. It runs after the cut, from the kept copy, so it never
// lengthens the outage, and it streams: a database can be larger than the
// memory settle may use.
func (r *Reconciler) Dump(ctx context.Context, db string, w io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, dumpTimeout)
	defer cancel()
	env, err := r.toolEnv(db)
	if err != nil {
		return err
	}
	c := reconcilers.Cmd{Argv: []string{r.bin("pg_dump"), "-Fc", "--no-password", "-d", db}, Env: env, SecretStdout: true}
	st := streamerFor(r.Host)
	if st == nil {
		return fmt.Errorf("dump %s: host %s cannot stream command output", db, r.Host)
	}
	if err := st.Stream(ctx, c, nil, w); err != nil {
		return fmt.Errorf("dump %s: %w", db, err)
	}
	return nil
}
