package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"settle/reconcilers"
	"settle/snapshot"
)

// dumpTimeout bounds one pg_dump.
const dumpTimeout = 6 * time.Hour

// CreateSnapshot dumps the live database (custom format) as snapshot id
// with its manifest. Row counts and the dump read one exported snapshot,
// so they agree even while the app writes. The dump appears under its
// name only when whole: temp file, fsync, manifest, then a hard link that
// fails rather than overwrite. progress, when set, hears the bytes
// written so far and the database's size about every half second.
func (r *Reconciler) CreateSnapshot(ctx context.Context, id string, progress func(written, dbSize int64)) (snapshot.File, error) {
	p := r.D.Postgres
	if !snapshot.ValidID(id) {
		return snapshot.File{}, fmt.Errorf("create snapshot: ID %q: use letters, digits, '.', '-' and '_', no path", id)
	}
	ctx, cancel := context.WithTimeout(ctx, dumpTimeout)
	defer cancel()
	if _, err := snapshot.Find(ctx, r.Host, p.SnapshotDir, id); !errors.Is(err, snapshot.ErrNotFound) {
		if err == nil {
			err = fmt.Errorf("snapshot %s already exists; pick another --id", id)
		}
		return snapshot.File{}, fmt.Errorf("create snapshot: %w", err)
	}
	c, err := r.connect(ctx, p.Database)
	if err != nil {
		return snapshot.File{}, err
	}
	defer c.Close(context.Background())
	tx, err := c.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return snapshot.File{}, fmt.Errorf("create snapshot: begin: %w", err)
	}
	defer tx.Rollback(context.Background())
	var snap, version string
	var dbSize int64
	if err := tx.QueryRow(ctx, "SELECT pg_export_snapshot(), current_setting('server_version'), pg_database_size(current_database())").Scan(&snap, &version, &dbSize); err != nil {
		return snapshot.File{}, fmt.Errorf("create snapshot: export snapshot: %w", err)
	}
	rows, err := countRows(ctx, tx)
	if err != nil {
		return snapshot.File{}, err
	}
	final := snapshot.DumpPath(p.SnapshotDir, id)
	tmp := filepath.Join(p.SnapshotDir, "."+id+".dump.partial-"+randHex())
	defer r.Host.Remove(context.Background(), tmp)
	env, err := r.toolEnv(p.Database)
	if err != nil {
		return snapshot.File{}, err
	}
	dump := reconcilers.Cmd{Argv: []string{r.bin("pg_dump"), "-Fc", "--no-password", "--snapshot=" + snap, "-f", tmp, "-d", p.Database}, Env: env}
	if err := r.runWatching(ctx, dump, tmp, func(n int64) {
		if progress != nil {
			progress(n, dbSize)
		}
	}); err != nil {
		return snapshot.File{}, fmt.Errorf("create snapshot %s: %w", id, err)
	}
	if err := r.run(ctx, "sync", tmp); err != nil {
		return snapshot.File{}, fmt.Errorf("create snapshot %s: fsync: %w", id, err)
	}
	sum, size, err := snapshot.Checksum(ctx, r.Host, tmp)
	if err != nil {
		return snapshot.File{}, err
	}
	m := &snapshot.Manifest{ID: id, File: filepath.Base(final), Format: snapshot.Custom, SHA256: sum, Size: size,
		ServerVersion: version, Database: p.Database, Created: time.Now().UTC(), Rows: rows,
		Generation: r.D.Generation, Commit: r.D.Git.Commit, Dirty: r.D.Git.Dirty}
	// Manifest first: a dump under its final name is always whole and,
	// when settle made it, always has its manifest.
	if err := snapshot.WriteManifest(ctx, r.Host, p.SnapshotDir, m); err != nil {
		return snapshot.File{}, err
	}
	if err := r.run(ctx, "ln", "--", tmp, final); err != nil {
		r.Host.Remove(context.Background(), snapshot.ManifestPath(p.SnapshotDir, id))
		return snapshot.File{}, fmt.Errorf("create snapshot %s: publish: %w", id, err)
	}
	if err := r.run(ctx, "sync", p.SnapshotDir); err != nil {
		return snapshot.File{}, fmt.Errorf("create snapshot %s: fsync %s: %w", id, p.SnapshotDir, err)
	}
	return snapshot.Find(ctx, r.Host, p.SnapshotDir, id)
}

// countRows counts every table pg_dump will dump data for, inside the
// exported snapshot's transaction.
func countRows(ctx context.Context, tx pgx.Tx) (map[string]int64, error) {
	rows, err := tx.Query(ctx, `SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind = 'r' AND c.relpersistence <> 't'
		AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%'
		AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')`)
	if err != nil {
		return nil, fmt.Errorf("create snapshot: list tables: %w", err)
	}
	type tbl struct{ schema, name string }
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (tbl, error) {
		var t tbl
		return t, r.Scan(&t.schema, &t.name)
	})
	if err != nil {
		return nil, fmt.Errorf("create snapshot: list tables: %w", err)
	}
	out := map[string]int64{}
	for _, t := range tables {
		var n int64
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{t.schema, t.name}.Sanitize()).Scan(&n); err != nil {
			return nil, fmt.Errorf("create snapshot: count %s.%s: %w", t.schema, t.name, err)
		}
		out[t.schema+"."+t.name] = n
	}
	return out, nil
}

// runWatching runs c and reports the size of file while it grows.
func (r *Reconciler) runWatching(ctx context.Context, c reconcilers.Cmd, file string, report func(int64)) error {
	done := make(chan error, 1)
	go func() { _, err := r.Host.Run(ctx, c); done <- err }()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-tick.C:
			sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			out, err := r.Host.Run(sctx, reconcilers.Cmd{Argv: []string{"stat", "-c", "%s", "--", file}})
			cancel()
			if n, perr := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil && perr == nil {
				report(n)
			}
		}
	}
}

func (r *Reconciler) run(ctx context.Context, argv ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	_, err := r.Host.Run(ctx, reconcilers.Cmd{Argv: argv})
	return err
}

func randHex() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Adopt records that the live database holds snapshot id (at the desired
// serial) without restoring anything: how an operator brings a database
// settle never restored under its care. An existing settle marker is only
// replaced with force.
func (r *Reconciler) Adopt(ctx context.Context, id string, force bool) (Marker, error) {
	if !snapshot.ValidID(id) {
		return Marker{}, fmt.Errorf("adopt: ID %q: use letters, digits, '.', '-' and '_'", id)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := r.connect(ctx, "")
	if err != nil {
		return Marker{}, err
	}
	defer c.Close(context.Background())
	o, err := r.observeDBs(ctx, c)
	if err != nil {
		return Marker{}, err
	}
	live := r.D.Postgres.Database
	switch {
	case !o.Live.Exists:
		return Marker{}, fmt.Errorf("adopt: database %s does not exist", live)
	case o.Live.Marker.Role == RoleLive && !force:
		return Marker{}, fmt.Errorf("adopt: %s already carries settle's marker for %s; pass --force to overwrite it", live, o.Live.Marker)
	}
	m := Marker{Role: RoleLive, Snapshot: id, Serial: r.D.Postgres.RestoreSerial, At: time.Now(), How: "adopted"}
	return m, comment(ctx, c, live, m)
}
