package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"text/tabwriter"
	"time"

	"settle/desired"
	"settle/reconcilers"
	"settle/reconcilers/postgres"
	"settle/snapshot"
)

type snapCmd struct {
	name, synopsis, about string
	run                   func(ctx context.Context, r *postgres.Reconciler, fs *flag.FlagSet, stdout, stderr io.Writer) int
	flags                 func(fs *flag.FlagSet)
}

var snapFlags struct {
	id, format string
	serial     int
	force      bool
}

func snapCommands() []snapCmd {
	return []snapCmd{
		{"create", "[-f FILE] [--id ID]", `Dumps the live database (pg_dump custom format) into snapshot_dir as ID.dump,
with a manifest ID.json (sha256, size, server version, per-table row counts
taken in the dump's own transaction snapshot, the desired file's generation
and commit). The dump appears under its name only when whole (temp file,
fsync, rename). Progress is shown when stderr is a terminal.
The default ID is <database>_<UTC yyyymmdd_hhmmss>.`, snapCreate,
			func(fs *flag.FlagSet) {
				fs.StringVar(&snapFlags.id, "id", "", "snapshot `ID` (letters, digits, . _ -)")
			}},
		{"list", "[-f FILE] [--format text|json]", `Lists the snapshots in snapshot_dir (newest first), which one is live and
staged, and the databases kept from earlier swaps with when they expire.`, snapList,
			func(fs *flag.FlagSet) {
				fs.StringVar(&snapFlags.format, "format", "text", "output `format`: text or json")
			}},
		{"verify", "[-f FILE] ID", `Checks a snapshot without restoring it: its sha256 and size against its
manifest (when it has one), its table of contents (pg_restore -l) for
custom dumps, the gzip stream for .sql.gz. Exit 0 good, 1 bad.`, snapVerify, nil},
		{"stage", "[-f FILE] [--serial N] ID", `Restores snapshot ID ahead of time into the staged database
(<database>__settle_next) and verifies it, while traffic flows. A later
rollback to ID (with the same restore_serial) is then only the swap, about
a second. The live database is not touched. Staging replaces whatever was
staged before.`, snapStage,
			func(fs *flag.FlagSet) {
				fs.IntVar(&snapFlags.serial, "serial", -1, "restore_serial to stage for (default: the desired file's)")
			}},
		{"adopt", "[-f FILE] [--force] ID", `Records that the live database already holds snapshot ID, without
restoring anything, by setting settle's marker on it. Use it once for a
database settle did not restore: until then settle reports it as
"unknown" and never restores over it. If the database holds something
else, adopt a name that is not a snapshot (e.g. pre-settle): the next
apply then restores the desired snapshot and keeps the current data for
keep_replaced. --force overwrites an existing settle marker.`, snapAdopt,
			func(fs *flag.FlagSet) {
				fs.BoolVar(&snapFlags.force, "force", false, "overwrite an existing settle marker")
			}},
	}
}

func runSnapshot(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		w := stderr
		if len(args) > 0 {
			w = stdout
		}
		fmt.Fprint(w, "Usage: settle snapshot <create|list|verify|stage|adopt> [flags]\n\n")
		for _, c := range snapCommands() {
			fmt.Fprintf(w, "  settle snapshot %s %s\n", c.name, c.synopsis)
		}
		fmt.Fprint(w, "\nRun \"settle snapshot <command> --help\" for what each does.\n")
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range snapCommands() {
		if c.name != args[0] {
			continue
		}
		fs := newFlags("snapshot "+c.name, c.synopsis, c.about, stderr)
		file := fileFlag(fs)
		if c.flags != nil {
			c.flags(fs)
		}
		// Flags may follow the ID too ("stage ID --serial 2"), as people type them.
		rest, pos := args[1:], []string{}
		for {
			if done, code := parseFlags(fs, rest); done {
				return code
			}
			if fs.NArg() == 0 {
				break
			}
			pos, rest = append(pos, fs.Arg(0)), fs.Args()[1:]
		}
		fs.Parse(append([]string{"--"}, pos...))
		d, ok := load(*file, stderr)
		if !ok {
			return exitFail
		}
		if d.Postgres == nil {
			fmt.Fprintf(stderr, "settle snapshot %s: %s has no [postgres] section\n", c.name, d.Path)
			return exitFail
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		host, closeHost, err := hostFor(ctx, d)
		if err != nil {
			return fail(stderr, c.name, err)
		}
		defer closeHost()
		r := &postgres.Reconciler{Host: host, D: d}
		return c.run(ctx, r, fs, stdout, stderr)
	}
	fmt.Fprintf(stderr, "settle snapshot: unknown command %q (create, list, verify, stage, adopt)\n", args[0])
	return exitUsage
}

// oneID is the single ID argument of verify, stage and adopt.
func oneID(fs *flag.FlagSet, stderr io.Writer) (string, bool) {
	if fs.NArg() != 1 {
		fmt.Fprintf(stderr, "settle %s: want exactly one snapshot ID\n", fs.Name())
		return "", false
	}
	return fs.Arg(0), true
}

func fail(stderr io.Writer, cmd string, err error) int {
	fmt.Fprintf(stderr, "settle snapshot %s: %s\n", cmd, reconcilers.Redact(err.Error()))
	return exitFail
}

func snapCreate(ctx context.Context, r *postgres.Reconciler, fs *flag.FlagSet, stdout, stderr io.Writer) int {
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "settle snapshot create: unexpected argument %q; name the snapshot with --id ID\n", fs.Arg(0))
		return exitUsage
	}
	id := snapFlags.id
	if id == "" {
		id = r.D.Postgres.Database + "_" + time.Now().UTC().Format("20060102_150405")
	}
	var progress func(int64, int64)
	if isTerminal(stderr) {
		start := time.Now()
		progress = func(n, total int64) {
			fmt.Fprintf(stderr, "\rsettle snapshot create: %s: %s written (database %s), %s   ",
				id, mib(n), mib(total), time.Since(start).Round(time.Second))
		}
	}
	f, err := r.CreateSnapshot(ctx, id, progress)
	if progress != nil {
		fmt.Fprintln(stderr)
	}
	if err != nil {
		return fail(stderr, "create", err)
	}
	fmt.Fprintf(stdout, "%s: %s, %s, sha256 %s, %d tables\n", f.ID, f.Path, mib(f.Size), f.Manifest.SHA256, len(f.Manifest.Rows))
	return exitOK
}

func mib(n int64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%d KiB", (n+1023)/1024)
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

type listing struct {
	Dir       string          `json:"snapshot_dir"`
	Desired   string          `json:"desired_snapshot"`
	Live      *postgres.DB    `json:"live,omitempty"`
	Staged    *postgres.DB    `json:"staged,omitempty"`
	Snapshots []snapshot.File `json:"snapshots"`
	Kept      []keptDB        `json:"kept"`
	Error     string          `json:"error,omitempty"` // the server could not be read
}

type keptDB struct {
	postgres.DB
	Expires time.Time `json:"expires,omitzero"`
}

func snapList(ctx context.Context, r *postgres.Reconciler, fs *flag.FlagSet, stdout, stderr io.Writer) int {
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "settle snapshot list: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if snapFlags.format != "text" && snapFlags.format != "json" {
		fmt.Fprintf(stderr, "settle snapshot list: --format %q: want text or json\n", snapFlags.format)
		return exitUsage
	}
	p := r.D.Postgres
	files, err := snapshot.List(ctx, r.Host, p.SnapshotDir)
	if err != nil {
		return fail(stderr, "list", err)
	}
	l := listing{Dir: p.SnapshotDir, Desired: p.Snapshot, Snapshots: files, Kept: []keptDB{}}
	if l.Snapshots == nil {
		l.Snapshots = []snapshot.File{}
	}
	code := exitOK
	if o, err := r.Observe(ctx); err != nil {
		l.Error, code = reconcilers.Redact(err.Error()), exitFail
	} else {
		l.Live = &o.Live
		if o.Scratch.Exists {
			l.Staged = &o.Scratch
		}
		for _, k := range o.Kept {
			kd := keptDB{DB: k}
			if !k.KeptAt.IsZero() {
				kd.Expires = k.KeptAt.Add(postgres.KeepFor(r.D))
			}
			l.Kept = append(l.Kept, kd)
		}
	}
	if snapFlags.format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(l)
	} else {
		printListing(stdout, l, r.D)
	}
	if l.Error != "" {
		fmt.Fprintf(stderr, "settle snapshot list: cannot read the server: %s\n", l.Error)
	}
	return code
}

func printListing(w io.Writer, l listing, d *desired.Desired) {
	live := ""
	if l.Live != nil && l.Live.Marker.Role == postgres.RoleLive {
		live = l.Live.Marker.Snapshot
	}
	staged := ""
	if l.Staged != nil && l.Staged.Marker.Role == postgres.RoleStaged {
		staged = l.Staged.Marker.Snapshot
	}
	fmt.Fprintf(w, "snapshots in %s (desired: %s)\n", l.Dir, l.Desired)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  ID\tFORMAT\tSIZE\tCREATED\tMANIFEST\tSTATE")
	for _, f := range l.Snapshots {
		created, man := f.ModTime, "no"
		if f.Manifest != nil {
			created, man = f.Manifest.Created, "yes"
		}
		var state string
		switch f.ID {
		case live:
			state = "live"
		case staged:
			state = "staged"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", f.ID, f.Format, mib(f.Size), created.UTC().Format(time.RFC3339), man, state)
	}
	tw.Flush()
	if l.Live != nil {
		fmt.Fprintf(w, "\nlive database %s: %s\n", d.Postgres.Database, l.Live.Marker)
	}
	if l.Staged != nil {
		fmt.Fprintf(w, "staged database %s: %s (%s)\n", l.Staged.Name, l.Staged.Marker, l.Staged.Marker.Role)
	}
	fmt.Fprintf(w, "\nkept databases (keep_replaced %s):\n", d.Postgres.KeepReplaced)
	if len(l.Kept) == 0 {
		fmt.Fprintln(w, "  none")
	}
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, k := range l.Kept {
		exp := "never (swap time unknown)"
		if !k.Expires.IsZero() {
			exp = "expires " + k.Expires.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "  %s\twas %s\t%s\t%s\n", k.Name, k.Marker.Snapshot, mib(k.Size), exp)
	}
	tw.Flush()
}

func snapVerify(ctx context.Context, r *postgres.Reconciler, fs *flag.FlagSet, stdout, stderr io.Writer) int {
	id, ok := oneID(fs, stderr)
	if !ok {
		return exitUsage
	}
	f, err := snapshot.Find(ctx, r.Host, r.D.Postgres.SnapshotDir, id)
	if err != nil {
		return fail(stderr, "verify", err)
	}
	rep, err := snapshot.Verify(ctx, r.Host, r.D.Postgres.BinDir, f)
	if err != nil {
		return fail(stderr, "verify", err)
	}
	sum := "sha256 " + rep.SHA256 + " (no manifest to compare)"
	if rep.HasManifest {
		sum = "sha256 matches its manifest"
	}
	fmt.Fprintf(stdout, "%s: ok: %s, %s, %s", f.ID, f.Format, mib(f.Size), sum)
	if f.Format == snapshot.Custom {
		fmt.Fprintf(stdout, ", table of contents reads (%d entries, %d with table data)", rep.Header.Entries, rep.Header.TableData)
	}
	if rep.Header.DumpedBy != "" {
		fmt.Fprintf(stdout, ", made by pg_dump %s", rep.Header.DumpedBy)
	}
	fmt.Fprintln(stdout)
	return exitOK
}

func snapStage(ctx context.Context, r *postgres.Reconciler, fs *flag.FlagSet, stdout, stderr io.Writer) int {
	id, ok := oneID(fs, stderr)
	if !ok {
		return exitUsage
	}
	serial := snapFlags.serial
	if serial < 0 {
		serial = r.D.Postgres.RestoreSerial
	}
	st, err := r.Restore(ctx, id, serial)
	if err != nil {
		return fail(stderr, "stage", err)
	}
	verified := "no manifest, row counts not compared"
	if st.Verified > 0 {
		verified = strconv.Itoa(st.Verified) + " tables' row counts match the manifest"
	}
	fmt.Fprintf(stdout, "%s staged in %s (serial %d) in %s; %s. Set snapshot = %q (restore_serial = %d) and apply: only the swap remains.\n",
		id, st.DB, serial, st.Took.Round(time.Millisecond), verified, id, serial)
	return exitOK
}

func snapAdopt(ctx context.Context, r *postgres.Reconciler, fs *flag.FlagSet, stdout, stderr io.Writer) int {
	id, ok := oneID(fs, stderr)
	if !ok {
		return exitUsage
	}
	m, err := r.Adopt(ctx, id, snapFlags.force)
	if err != nil {
		return fail(stderr, "adopt", err)
	}
	fmt.Fprintf(stdout, "%s now marked as holding %s: %q\n", r.D.Postgres.Database, m, m.Format())
	if _, err := snapshot.Find(ctx, r.Host, r.D.Postgres.SnapshotDir, id); errors.Is(err, snapshot.ErrNotFound) && id != r.D.Postgres.Snapshot {
		fmt.Fprintf(stdout, "%s is not a snapshot file; the next apply restores %s and keeps the current data for %s\n", id, r.D.Postgres.Snapshot, r.D.Postgres.KeepReplaced)
	}
	return exitOK
}
