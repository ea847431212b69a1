package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"settle/reconcilers"
	"settle/snapshot"
)

// restoreTimeout bounds one restore, whatever the size.
const restoreTimeout = 6 * time.Hour

// Staged is what a restore left ready for a swap.
type Staged struct {
	DB       string
	File     snapshot.File
	Took     time.Duration
	Verified int // tables whose row counts matched the manifest
	Counted  int // of those, how many needed a count(*) (see needCounting)
}

// Restore restores snapshot id into the scratch database and marks it
// staged for (id, serial). The live database is not touched. On any
// failure after the scratch database was created it is dropped again;
// before that, nothing was created.
func (r *Reconciler) Restore(ctx context.Context, id string, serial int) (st Staged, err error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, restoreTimeout)
	defer cancel()
	p := r.D.Postgres
	scratch := ScratchName(p.Database)
	c, err := r.connect(ctx, "")
	if err != nil {
		return st, err
	}
	defer c.Close(context.Background())
	if err := lockDB(ctx, c, r.D.Postgres.Database); err != nil {
		return st, err
	}
	o, err := r.observeDBs(ctx, c)
	if err != nil {
		return st, err
	}
	if o.Scratch.Exists && o.Scratch.Marker.IsZero() {
		return st, fmt.Errorf("restore %s: database %s exists but settle did not make it (comment %q); rename or drop it by hand", id, scratch, o.Scratch.Comment)
	}
	f, err := snapshot.Find(ctx, r.Host, p.SnapshotDir, id)
	if err != nil {
		return st, fmt.Errorf("restore %s: %w", id, err)
	}
	loc, owner := o.Live.Locale, o.Live.Owner
	if !o.Live.Exists {
		if loc, owner, err = defaults(ctx, c); err != nil {
			return st, err
		}
	}
	if _, err := r.preflight(ctx, c, f, loc); err != nil {
		return st, err
	}
	// A scratch database from an earlier, different or crashed restore
	// is replaced; it never held anything but a copy of a snapshot.
	if o.Scratch.Exists {
		if err := dropScratch(c, scratch); err != nil {
			return st, err
		}
	}
	if err := createScratch(ctx, c, scratch, owner, loc, o.Live); err != nil {
		return st, err
	}
	defer func() {
		if err != nil {
			if derr := dropScratch(c, scratch); derr != nil {
				err = errors.Join(err, derr)
			}
		}
	}()
	mark := Marker{Role: RoleRestoring, Snapshot: id, Serial: serial, At: time.Now()}
	if err := comment(ctx, c, scratch, mark); err != nil {
		return st, err
	}
	if err := r.load(ctx, f, scratch); err != nil {
		return st, fmt.Errorf("restore %s into %s: %w", id, scratch, err)
	}
	n, counted, err := r.verifyRows(ctx, f, scratch)
	if err != nil {
		return st, err
	}
	mark.Role, mark.At = RoleStaged, time.Now()
	if err := comment(ctx, c, scratch, mark); err != nil {
		return st, err
	}
	return Staged{DB: scratch, File: f, Took: time.Since(start), Verified: n, Counted: counted}, nil
}

// defaults is template1's locale and the connecting role, for a first
// restore onto a server without the live database.
func defaults(ctx context.Context, c *pgx.Conn) (Locale, string, error) {
	var l Locale
	var owner string
	err := c.QueryRow(ctx, `SELECT pg_encoding_to_char(encoding), datcollate, datctype, current_user
		FROM pg_database WHERE datname = 'template1'`).Scan(&l.Encoding, &l.Collate, &l.Ctype, &owner)
	l.Provider = "c"
	if err != nil {
		return l, "", fmt.Errorf("read template1's locale: %w", err)
	}
	return l, owner, nil
}

// createScratch makes an empty database like the live one: template0 with
// its encoding, locale and owner, and, since a dump without --create
// carries neither, its privileges and per-database settings, so the app
// can connect to the swapped-in database exactly as before.
func createScratch(ctx context.Context, c *pgx.Conn, name, owner string, l Locale, live DB) error {
	q := fmt.Sprintf("CREATE DATABASE %s TEMPLATE template0 OWNER %s ENCODING %s LC_COLLATE %s LC_CTYPE %s",
		ident(name), ident(owner), quoteLiteral(l.Encoding), quoteLiteral(l.Collate), quoteLiteral(l.Ctype))
	if l.Provider == "i" {
		q += " LOCALE_PROVIDER icu ICU_LOCALE " + quoteLiteral(l.ICULocale)
	}
	if _, err := c.Exec(ctx, q); err != nil {
		return fmt.Errorf("create scratch database %s: %w", name, err)
	}
	if !live.Exists {
		return nil
	}
	if err := copyAccess(ctx, c, live.Name, name); err != nil {
		dropScratch(c, name)
		return fmt.Errorf("copy privileges and settings of %s to %s: %w", live.Name, name, err)
	}
	return nil
}

func copyAccess(ctx context.Context, c *pgx.Conn, from, to string) error {
	var hasACL bool
	if err := c.QueryRow(ctx, "SELECT datacl IS NOT NULL FROM pg_database WHERE datname = $1", from).Scan(&hasACL); err != nil {
		return err
	}
	if hasACL {
		rows, err := c.Query(ctx, `SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END,
			a.privilege_type, a.is_grantable
			FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = $1`, from)
		if err != nil {
			return err
		}
		type grant struct {
			role, priv string
			opt        bool
		}
		grants, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (grant, error) {
			var g grant
			return g, r.Scan(&g.role, &g.priv, &g.opt)
		})
		if err != nil {
			return err
		}
		stmts := []string{"REVOKE ALL ON DATABASE " + ident(to) + " FROM PUBLIC"}
		for _, g := range grants {
			role := "PUBLIC"
			if g.role != "PUBLIC" {
				role = ident(g.role)
			}
			s := "GRANT " + g.priv + " ON DATABASE " + ident(to) + " TO " + role // privilege_type is a keyword from the server
			if g.opt {
				s += " WITH GRANT OPTION"
			}
			stmts = append(stmts, s)
		}
		for _, s := range stmts {
			if _, err := c.Exec(ctx, s); err != nil {
				return err
			}
		}
	}
	// ALTER DATABASE ... SET cannot be replayed faithfully from setconfig
	// text (list-valued settings lose their quoting), so the rows are
	// copied as they are; the catalog is the source of truth for them.
	// That takes a superuser, so it is only done when there is something
	// to copy.
	var settings int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM pg_db_role_setting s JOIN pg_database f
		ON f.oid = s.setdatabase AND f.datname = $1`, from).Scan(&settings); err != nil || settings == 0 {
		return err
	}
	_, err := c.Exec(ctx, `INSERT INTO pg_db_role_setting (setdatabase, setrole, setconfig)
		SELECT t.oid, s.setrole, s.setconfig FROM pg_db_role_setting s
		JOIN pg_database f ON f.oid = s.setdatabase AND f.datname = $1
		CROSS JOIN pg_database t WHERE t.datname = $2`, from, to)
	return err
}

func comment(ctx context.Context, c *pgx.Conn, db string, m Marker) error {
	if _, err := c.Exec(ctx, "COMMENT ON DATABASE "+ident(db)+" IS "+quoteLiteral(m.Format())); err != nil {
		return fmt.Errorf("mark database %s: %w", db, err)
	}
	return nil
}

// load runs the restore program for f's format, stopping at the first
// error: pg_restore --exit-on-error, psql ON_ERROR_STOP.
func (r *Reconciler) load(ctx context.Context, f snapshot.File, db string) error {
	p := r.D.Postgres
	env, err := r.toolEnv(db)
	if err != nil {
		return err
	}
	if f.Format == snapshot.Custom {
		argv := []string{r.bin("pg_restore"), "--exit-on-error", "--no-password", "-j", strconv.Itoa(max(p.Jobs, 1)), "-d", db}
		if p.NoOwner {
			argv = append(argv, "--no-owner")
		}
		_, err := r.Host.Run(ctx, reconcilers.Cmd{Argv: append(argv, "--", f.Path), Env: env})
		return err
	}
	psql := reconcilers.Cmd{Argv: []string{r.bin("psql"), "-X", "-q", "--no-password", "-v", "ON_ERROR_STOP=1", "-d", db}, Env: env}
	if f.Format == snapshot.SQL && !p.NoOwner {
		psql.Argv = append(psql.Argv, "-f", f.Path)
		_, err := r.Host.Run(ctx, psql)
		return err
	}
	s := streamerFor(r.Host)
	if s == nil {
		return fmt.Errorf("host %s cannot stream a %s dump into psql; restore it locally or convert it to a custom dump (pg_restore-able)", r.Host, f.Format)
	}
	src := reconcilers.Cmd{Argv: []string{"cat", "--", f.Path}}
	if f.Format == snapshot.SQLGz {
		src.Argv = []string{"gzip", "-dc", "--", f.Path}
	}
	var filter func(io.Reader) io.Reader
	if p.NoOwner {
		filter = dropOwners
	}
	return pipe(ctx, s, src, psql, filter)
}

// verifyRows counts every table the manifest lists in the restored
// database; any difference fails the restore. Without a manifest there is
// nothing to compare against, but a dump that restored no table at all (a
// nightly job that wrote an empty file) must not become the live database.
func (r *Reconciler) verifyRows(ctx context.Context, f snapshot.File, db string) (int, int, error) {
	if f.Manifest == nil || len(f.Manifest.Rows) == 0 {
		return 0, 0, r.notEmpty(ctx, db)
	}
	tables, err := r.needCounting(ctx, f.Manifest.Rows, db)
	if err != nil {
		return 0, 0, err
	}
	// The rest are counted on up to jobs connections at once, the same
	// parallelism the restore itself was allowed.
	bad := make([]string, len(tables))
	work := make(chan int)
	var wg sync.WaitGroup
	var connErr error
	var once sync.Once
	for range min(max(r.D.Postgres.Jobs, 1), len(tables)) { // no tables: no workers
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := r.connect(ctx, db)
			if err != nil {
				once.Do(func() { connErr = err })
				for range work {
				}
				return
			}
			defer c.Close(context.Background())
			for i := range work {
				t := tables[i]
				schema, table, _ := strings.Cut(t, ".")
				var n int64
				if err := c.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{schema, table}.Sanitize()).Scan(&n); err != nil {
					bad[i] = fmt.Sprintf("%s: %v", t, err)
				} else if want := f.Manifest.Rows[t]; n != want {
					bad[i] = fmt.Sprintf("%s has %d rows, manifest says %d", t, n, want)
				}
			}
		}()
	}
	for i := range tables {
		work <- i
	}
	close(work)
	wg.Wait()
	if connErr != nil {
		return 0, 0, connErr
	}
	bad = slices.DeleteFunc(bad, func(s string) bool { return s == "" })
	if len(bad) > 0 {
		if len(bad) > 5 {
			bad = append(bad[:5], fmt.Sprintf("and %d more", len(bad)-5))
		}
		return 0, 0, fmt.Errorf("verify %s against its manifest: %s", db, strings.Join(bad, "; "))
	}
	return len(f.Manifest.Rows), len(tables), nil
}

// needCounting returns the manifest's tables whose rows the restore has
// not already counted. Building an index scans the whole table and stores
// the live tuples it saw in pg_class.reltuples; on a database nobody else
// has written to, right after the restore built its indexes, that is the
// exact row count. It is a float4, exact below 2^24, so larger tables,
// tables without an index, and any that disagree are counted with count(*).
func (r *Reconciler) needCounting(ctx context.Context, want map[string]int64, db string) ([]string, error) {
	c, err := r.connect(ctx, db)
	if err != nil {
		return nil, err
	}
	defer c.Close(context.Background())
	rows, err := c.Query(ctx, `SELECT n.nspname || '.' || c.relname, c.reltuples FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND c.relhasindex AND c.reltuples >= 0`)
	if err != nil {
		return nil, fmt.Errorf("verify %s: read index build counts: %w", db, err)
	}
	built := map[string]float32{}
	var name string
	var n float32
	_, err = pgx.ForEachRow(rows, []any{&name, &n}, func() error { built[name] = n; return nil })
	if err != nil {
		return nil, fmt.Errorf("verify %s: read index build counts: %w", db, err)
	}
	var todo []string
	for _, t := range sortedKeys(want) {
		if got, ok := built[t]; ok && want[t] < 1<<24 && got == float32(want[t]) {
			continue
		}
		todo = append(todo, t)
	}
	return todo, nil
}

func sortedKeys(m map[string]int64) []string {
	b := make(map[string]bool, len(m))
	for k := range m {
		b[k] = true
	}
	return keys(b)
}

func (r *Reconciler) notEmpty(ctx context.Context, db string) error {
	c, err := r.connect(ctx, db)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	var tables int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%'`).Scan(&tables); err != nil {
		return fmt.Errorf("verify %s: count tables: %w", db, err)
	}
	if tables == 0 {
		return fmt.Errorf("verify %s: the snapshot restored no table at all (an empty dump?); refusing to swap an empty database in", db)
	}
	return nil
}
