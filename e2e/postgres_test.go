//go:build e2e

package e2e_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"settle/desired"
	"settle/e2e/sandbox"
	"settle/reconcilers"
	"settle/reconcilers/postgres"
)

// pgSetup starts a sandbox and a postgres reconciler on its desired file,
// with the DSN in the environment the way an operator would export it.
func pgSetup(t *testing.T) (*sandbox.Sandbox, *postgres.Reconciler) {
	t.Helper()
	sb := sandbox.Start(t)
	t.Setenv("SETTLE_PG_DSN", sb.AdminDSN)
	d, err := desired.Load(sb.DesiredPath)
	if err != nil {
		t.Fatal(err)
	}
	return sb, &postgres.Reconciler{Host: reconcilers.Local{}, D: d}
}

func pgCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// pgConverge is the controller's loop for one reconciler: observe, plan,
// apply each action, then observe and plan again, which must be in sync.
func pgConverge(t *testing.T, ctx context.Context, r *postgres.Reconciler) []string {
	t.Helper()
	res := pgPlan(t, ctx, r)
	var ops []string
	for _, a := range res.Actions {
		if err := r.Apply(ctx, a); err != nil {
			t.Fatalf("apply %s: %v", a.Op, err)
		}
		ops = append(ops, a.Op)
	}
	if after := pgPlan(t, ctx, r); after.Status != reconcilers.InSync {
		t.Fatalf("not in sync after apply: %s, actual %q, %d actions, reason %q", after.Status, after.Actual, len(after.Actions), after.Reason)
	}
	return ops
}

func pgPlan(t *testing.T, ctx context.Context, r *postgres.Reconciler) reconcilers.Resource {
	t.Helper()
	o, err := r.Observe(ctx)
	if err != nil {
		t.Fatalf("observe: %v", err)
	}
	return postgres.Plan(r.D, o)
}

func pgExec(t *testing.T, ctx context.Context, dsn string, qs ...string) {
	t.Helper()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer c.Close(ctx)
	for _, q := range qs {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// dsnFor is the admin DSN pointed at another database.
func dsnFor(sb *sandbox.Sandbox, db string) string {
	return strings.Replace(sb.AdminDSN, "/postgres?", "/"+db+"?", 1)
}

// pgWorld is everything a failed restore must leave as it was: every
// database with its comment and whether it takes connections, and the
// live rows.
func pgWorld(t *testing.T, ctx context.Context, sb *sandbox.Sandbox) string {
	t.Helper()
	c, err := pgx.Connect(ctx, sb.AdminDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	rows, _ := c.Query(ctx, `SELECT datname || ' ' || datallowconn || ' ' || coalesce(shobj_description(oid, 'pg_database'), '')
		FROM pg_database ORDER BY datname`)
	dbs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	leads := "unreadable"
	if lc, err := pgx.Connect(ctx, dsnFor(sb, "demo")); err == nil {
		var n int
		lc.QueryRow(ctx, "SELECT count(*) FROM leads").Scan(&n)
		lc.Close(ctx)
		leads = itoa(n)
	}
	return strings.Join(dbs, "\n") + "\nleads=" + leads
}

func TestPostgresSnapshotRollback(t *testing.T) {
	sb, r := pgSetup(t)
	ctx := pgCtx(t)
	// The sandbox marks demo as demo_initial; a server settle meets for the
	// first time has no marker.
	pgExec(t, ctx, sb.AdminDSN, "COMMENT ON DATABASE demo IS NULL")

	// A database settle never restored is unknown, and the plan says how
	// to bring it under settle's care instead of restoring over it.
	res := pgPlan(t, ctx, r)
	if res.Status != reconcilers.Unknown || len(res.Actions) != 0 || !strings.Contains(res.Reason, "settle snapshot adopt") {
		t.Fatalf("unmarked live db: %s %d actions, reason %q", res.Status, len(res.Actions), res.Reason)
	}
	if _, err := r.Adopt(ctx, "demo_initial", false); err != nil {
		t.Fatal(err)
	}
	if ops := pgConverge(t, ctx, r); len(ops) != 0 {
		t.Fatalf("adopted db should be in sync, ran %v", ops)
	}

	startBlue(t, ctx, sb)
	blue := fmt.Sprintf("http://127.0.0.1:%d/api/", sb.BluePort)
	pid := waitHealthy(t, blue+"health", "blue")
	if n := leadsCount(t, blue); n != 5 {
		t.Fatalf("blue serves %d leads before the snapshot, want 5", n)
	}

	f, err := r.CreateSnapshot(ctx, "before_import", nil)
	if err != nil {
		t.Fatalf("snapshot create: %v", err)
	}
	if f.Manifest == nil || f.Manifest.Rows["public.leads"] != 5 || f.Manifest.Database != "demo" || f.Manifest.Generation != r.D.Generation {
		t.Fatalf("manifest: %+v", f.Manifest)
	}
	pgExec(t, ctx, sb.AppDSN, "INSERT INTO leads (email) SELECT 'late' || i || '@example.com' FROM generate_series(1, 3) AS i")
	if n := leadsCount(t, blue); n != 8 {
		t.Fatalf("blue serves %d leads after the writes, want 8", n)
	}

	// Database-level privileges and settings are not in a dump; the
	// swapped-in database must carry them, or the app is locked out.
	pgExec(t, ctx, sb.AdminDSN, "REVOKE CONNECT ON DATABASE demo FROM PUBLIC", "GRANT CONNECT ON DATABASE demo TO demo_app",
		"ALTER DATABASE demo SET work_mem = '8MB'")
	r.D.Postgres.Snapshot = "before_import"
	if ops := pgConverge(t, ctx, r); !slices.Equal(ops, []string{postgres.OpRestore, postgres.OpSwap}) {
		t.Fatalf("rollback ran %v, want restore then swap", ops)
	}
	if n := queryInt(t, ctx, sb.AdminDSN, `SELECT count(*) FROM pg_database WHERE datname = 'demo'
		AND NOT has_database_privilege('public', oid, 'CONNECT') AND has_database_privilege('demo_app', oid, 'CONNECT')
		AND EXISTS (SELECT 1 FROM pg_db_role_setting WHERE setdatabase = oid AND 'work_mem=8MB' = ANY(setconfig))`); n != 1 {
		t.Fatalf("the swapped-in database lost the live one's privileges or settings")
	}
	if n := queryInt(t, ctx, dsnFor(sb, "demo"), "SELECT count(*) FROM leads"); n != 5 {
		t.Fatalf("live has %d leads after rollback, want the snapshot's 5", n)
	}
	o, err := r.Observe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Kept) != 1 || !strings.HasPrefix(o.Kept[0].Name, "demo__kept_") || o.Kept[0].Marker.Snapshot != "demo_initial" {
		t.Fatalf("kept databases: %+v", o.Kept)
	}
	if n := queryInt(t, ctx, dsnFor(sb, o.Kept[0].Name), "SELECT count(*) FROM leads"); n != 8 {
		t.Fatalf("kept database has %d leads, want the 8 written before the rollback", n)
	}
	if o.Live.Owner != "demo_app" {
		t.Fatalf("swapped-in database is owned by %s, want demo_app", o.Live.Owner)
	}
	// The app's pool reconnects to the swapped-in database by itself.
	deadline := time.Now().Add(15 * time.Second)
	for n := leadsCount(t, blue); n != 5; n = leadsCount(t, blue) {
		if time.Now().After(deadline) {
			t.Fatalf("blue still serves %d leads 15s after the swap, want 5", n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if now := waitHealthy(t, blue+"health", "blue"); now != pid {
		t.Fatalf("blue was restarted (pid %s -> %s); the swap must not need that", pid, now)
	}

	// Restoring the same snapshot again is a serial bump.
	r.D.Postgres.RestoreSerial = 1
	if ops := pgConverge(t, ctx, r); !slices.Equal(ops, []string{postgres.OpRestore, postgres.OpSwap}) {
		t.Fatalf("serial bump ran %v", ops)
	}

	// A staged snapshot makes the rollback only the swap.
	if _, err := r.Restore(ctx, "demo_initial", 1); err != nil {
		t.Fatalf("stage: %v", err)
	}
	r.D.Postgres.Snapshot = "demo_initial"
	if ops := pgConverge(t, ctx, r); !slices.Equal(ops, []string{postgres.OpSwap}) {
		t.Fatalf("swap of a staged snapshot ran %v", ops)
	}

	// Kept databases go once keep_replaced has passed, and not before.
	r.D.Postgres.KeepReplaced = "0s"
	ops := pgConverge(t, ctx, r)
	if len(ops) != 3 || ops[0] != postgres.OpDropKept {
		t.Fatalf("expiry ran %v, want three drop-kept", ops)
	}
	if o, _ := r.Observe(ctx); len(o.Kept) != 0 {
		t.Fatalf("kept databases left: %+v", o.Kept)
	}
}

func leadsCount(t *testing.T, base string) int {
	t.Helper()
	code, body := httpGet(base + "leads")
	var v struct{ Count int }
	if code != 200 || json.Unmarshal([]byte(body), &v) != nil {
		return -1
	}
	return v.Count
}

func TestPostgresRestoreFailuresLeaveLiveUntouched(t *testing.T) {
	sb, r := pgSetup(t)
	ctx := pgCtx(t)
	if _, err := r.Adopt(ctx, "demo_initial", true); err != nil {
		t.Fatal(err)
	}
	good, err := r.CreateSnapshot(ctx, "good", nil)
	if err != nil {
		t.Fatal(err)
	}
	dump, err := os.ReadFile(good.Path)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(sb.SnapshotDir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	manifest := func(id string) {
		b, _ := os.ReadFile(filepath.Join(sb.SnapshotDir, "good.json"))
		write(id+".json", bytes.ReplaceAll(b, []byte(`"good`), []byte(`"`+id)))
	}
	// A dump that needs a role this server lacks, made the real way.
	pgExec(t, ctx, sb.AdminDSN, "CREATE ROLE ghost NOLOGIN", "CREATE DATABASE ghostdb")
	pgExec(t, ctx, dsnFor(sb, "ghostdb"), "CREATE TABLE t (a int)", "ALTER TABLE t OWNER TO ghost")
	pgDump(t, ctx, sb, "ghostdb", "-Fc", "-f", filepath.Join(sb.SnapshotDir, "needs_role.dump"))
	pgExec(t, ctx, sb.AdminDSN, "DROP DATABASE ghostdb", "DROP ROLE ghost")
	// A nightly job that dumped an empty database: a real, valid dump of nothing.
	pgExec(t, ctx, sb.AdminDSN, "CREATE DATABASE emptydb")
	write("empty_nightly.sql", pgDump(t, ctx, sb, "emptydb"))
	pgExec(t, ctx, sb.AdminDSN, "DROP DATABASE emptydb")

	tampered := bytes.Clone(dump)
	tampered[len(tampered)-10] ^= 0xff
	write("corrupt.dump", []byte("PGDMP this is not a dump at all, just bytes\n"))
	write("truncated.dump", dump[:len(dump)*2/3])
	write("tampered.dump", tampered)
	manifest("tampered")
	write("rows_differ.dump", dump)
	manifest("rows_differ")
	m, _ := os.ReadFile(filepath.Join(sb.SnapshotDir, "rows_differ.json"))
	write("rows_differ.json", bytes.Replace(m, []byte(`"public.leads": 5`), []byte(`"public.leads": 6`), 1))
	write("needs_ext.sql", []byte("-- Dumped by pg_dump version 15.0\nCREATE EXTENSION IF NOT EXISTS no_such_extension WITH SCHEMA public;\n"))
	write("bad_sql.sql", []byte("-- Dumped by pg_dump version 15.0\nCREATE TABLE t (a int);\nINSERT INTO t VALUES ('not a number');\n"))

	cases := []struct{ id, want string }{
		{"missing", "snapshot not found"},
		{"corrupt", "the file is corrupt"},
		{"truncated", "truncated"},
		{"tampered", "manifest says"},
		{"needs_role", "role(s) ghost"},
		{"needs_ext", "no_such_extension"},
		{"bad_sql", "not a number"},
		{"rows_differ", "public.leads has 5 rows, manifest says 6"},
		{"empty_nightly", "restored no table"},
	}
	before := pgWorld(t, ctx, sb)
	for _, c := range cases {
		t.Run(c.id, func(t *testing.T) {
			err := r.Apply(ctx, reconcilers.Action{Kind: postgres.Kind, Op: postgres.OpRestore,
				Args: map[string]string{"snapshot": c.id, "serial": "0", "scratch": postgres.ScratchName("demo")}})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("restore %s: err = %v, want one mentioning %q", c.id, err, c.want)
			}
			t.Logf("restore %s: %v", c.id, err)
			if strings.Contains(err.Error(), sb.AdminDSN) || strings.Contains(err.Error(), pgPassword(sb)) {
				t.Fatalf("error carries the DSN password")
			}
			if after := pgWorld(t, ctx, sb); after != before {
				t.Fatalf("the failed restore changed the server:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			// The plan never swaps in what failed to restore.
			r.D.Postgres.Snapshot = c.id
			res := pgPlan(t, ctx, r)
			for _, a := range res.Actions {
				if a.Op == postgres.OpSwap {
					if err := r.Apply(ctx, a); err == nil {
						t.Fatalf("swap of a failed restore succeeded")
					}
				}
			}
		})
	}
	r.D.Postgres.Snapshot = "demo_initial"
	if after := pgWorld(t, ctx, sb); after != before {
		t.Fatalf("server changed:\n%s\n%s", before, after)
	}

	// no_owner is how a dump owned by a missing role is restored on purpose.
	r.D.Postgres.NoOwner = true
	r.D.Postgres.Snapshot = "needs_role"
	if ops := pgConverge(t, ctx, r); len(ops) != 2 {
		t.Fatalf("no_owner restore ran %v", ops)
	}

	// A live database whose locale the server no longer has: the scratch
	// database could not be made like it, so nothing is made at all.
	pgExec(t, ctx, sb.AdminDSN, "UPDATE pg_database SET datcollate = 'xx_XX.UTF-8', datctype = 'xx_XX.UTF-8' WHERE datname = 'demo'")
	before = pgWorld(t, ctx, sb)
	r.D.Postgres.Snapshot, r.D.Postgres.NoOwner = "good", false
	_, err = r.Restore(ctx, "good", 0)
	if err == nil || !strings.Contains(err.Error(), "locale") {
		t.Fatalf("restore with an unknown locale: %v", err)
	}
	if after := pgWorld(t, ctx, sb); after != before {
		t.Fatalf("server changed:\n%s\n%s", before, after)
	}
	pgExec(t, ctx, sb.AdminDSN, "UPDATE pg_database SET datcollate = 'C', datctype = 'C' WHERE datname = 'demo'")
}

func pgPassword(sb *sandbox.Sandbox) string {
	_, rest, _ := strings.Cut(sb.AdminDSN, "settle_admin:")
	pw, _, _ := strings.Cut(rest, "@")
	return pw
}

func pgDump(t *testing.T, ctx context.Context, sb *sandbox.Sandbox, db string, args ...string) []byte {
	t.Helper()
	cmd := exec.CommandContext(ctx, filepath.Join(sb.PGBinDir, "pg_dump"), append(args, "-d", dsnFor(sb, db))...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pg_dump %s: %v: %s", db, err, strings.ReplaceAll(stderr.String(), pgPassword(sb), "***"))
	}
	return out
}

func TestPostgresPlainGzipRestores(t *testing.T) {
	sb, r := pgSetup(t)
	ctx := pgCtx(t)
	if _, err := r.Adopt(ctx, "demo_initial", true); err != nil {
		t.Fatal(err)
	}
	pgExec(t, ctx, sb.AppDSN, "INSERT INTO leads (email) VALUES ('plain@example.com')")
	// pg_dump | gzip, piped in Go: no shell.
	plain := pgDump(t, ctx, sb, "demo")
	f, err := os.Create(filepath.Join(sb.SnapshotDir, "plain_gz.sql.gz"))
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	zw.Write(plain)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	pgExec(t, ctx, sb.AppDSN, "DELETE FROM leads")

	r.D.Postgres.Snapshot = "plain_gz"
	if ops := pgConverge(t, ctx, r); len(ops) != 2 {
		t.Fatalf("ran %v", ops)
	}
	if n := queryInt(t, ctx, dsnFor(sb, "demo"), "SELECT count(*) FROM leads"); n != 6 {
		t.Fatalf("live has %d leads after the plain restore, want 6", n)
	}
	if n := queryInt(t, ctx, sb.AppDSN, "SELECT count(*) FROM leads WHERE email = 'plain@example.com'"); n != 1 {
		t.Fatalf("the app role cannot read the restored table the way it did")
	}
}

func TestPostgresSnapshotCLI(t *testing.T) {
	sb := sandbox.Start(t)
	t.Setenv("SETTLE_PG_DSN", sb.AdminDSN)
	pgExec(t, pgCtx(t), sb.AdminDSN, "COMMENT ON DATABASE demo IS NULL")
	run := func(want int, args ...string) string {
		t.Helper()
		code, out, errOut := settleRun(t, sb, append([]string{"snapshot"}, args...)...)
		if code != want {
			t.Fatalf("settle snapshot %v: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", args, code, want, out, errOut)
		}
		if strings.Contains(out+errOut, pgPassword(sb)) || strings.Contains(out+errOut, sb.RedisPassword) {
			t.Fatalf("settle snapshot %v printed a password", args)
		}
		return out + errOut
	}
	for _, c := range []string{"create", "list", "verify", "stage", "adopt"} {
		if out := run(0, c, "--help"); !strings.Contains(out, "Usage: settle snapshot "+c) {
			t.Fatalf("%s --help: %s", c, out)
		}
	}
	if out := run(0, "list"); !strings.Contains(out, "demo_initial") || !strings.Contains(out, "no settle marker") {
		t.Fatalf("list before adopt:\n%s", out)
	}
	run(0, "adopt", "demo_initial")
	run(1, "adopt", "demo_initial") // a marker is only overwritten with --force
	// Not a terminal: no progress lines, one summary line.
	if out := run(0, "create", "--id", "cli_snap"); strings.Count(out, "\n") != 1 || !strings.Contains(out, "sha256") {
		t.Fatalf("create printed:\n%s", out)
	}
	run(1, "create", "--id", "cli_snap") // never overwrites
	if out := run(0, "verify", "cli_snap"); !strings.Contains(out, "sha256 matches its manifest") {
		t.Fatalf("verify:\n%s", out)
	}
	p := filepath.Join(sb.SnapshotDir, "cli_snap.dump")
	b, _ := os.ReadFile(p)
	b[len(b)/2] ^= 0xff
	os.WriteFile(p, b, 0o644)
	if out := run(1, "verify", "cli_snap"); !strings.Contains(out, "manifest says") {
		t.Fatalf("verify of a changed dump:\n%s", out)
	}
	run(1, "stage", "cli_snap")
	if out := run(0, "stage", "demo_initial", "--serial", "1"); !strings.Contains(out, "staged in demo__settle_next") {
		t.Fatalf("stage:\n%s", out)
	}
	var l struct {
		Live   struct{ Marker struct{ Snapshot string } }
		Staged struct {
			Marker struct{ Role, Snapshot string }
		}
		Snapshots []struct{ ID string }
		Kept      []any
	}
	if err := json.Unmarshal([]byte(run(0, "list", "--format", "json")), &l); err != nil {
		t.Fatal(err)
	}
	if l.Live.Marker.Snapshot != "demo_initial" || l.Staged.Marker.Role != "staged" || len(l.Snapshots) != 2 || l.Kept == nil {
		t.Fatalf("list --format json: %+v", l)
	}
}
