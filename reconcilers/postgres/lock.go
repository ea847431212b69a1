package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// lockDB takes a session advisory lock on the PostgreSQL server for the
// live database's name, held by c until it closes. Restores and swaps of
// one database never overlap, whichever settle runs them: the agent, a
// `settle snapshot stage` beside it, or an operator on another machine over
// SSH (the state dir lock is local; this one lives with the data).
func lockDB(ctx context.Context, c *pgx.Conn, db string) error {
	var ok bool
	if err := c.QueryRow(ctx, "SELECT pg_try_advisory_lock(hashtext($1))", "settle:"+db).Scan(&ok); err != nil {
		return fmt.Errorf("lock %s: %w", db, err)
	}
	if !ok {
		return fmt.Errorf("another settle is restoring or swapping %s right now (advisory lock held); wait for it to finish", db)
	}
	return nil
}
