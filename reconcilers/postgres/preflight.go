package postgres

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"settle/reconcilers"
	"settle/snapshot"
)

// needs is what a dump asks of the server before it can be restored.
type needs struct {
	roles      []string
	extensions []string
	connects   bool // a plain dump that creates or connects to databases
}

var (
	ownerRe   = regexp.MustCompile(`^ALTER .* OWNER TO (.+);$`)
	grantRe   = regexp.MustCompile(`^(?:GRANT .* TO|REVOKE .* FROM) (.+?)(?: WITH GRANT OPTION| GRANTED BY .*)?;$`)
	defPrivRe = regexp.MustCompile(`^ALTER DEFAULT PRIVILEGES FOR ROLE (\S+)`)
	extRe     = regexp.MustCompile(`^CREATE EXTENSION (?:IF NOT EXISTS )?(\S+?)(?: WITH .*)?;$`)
	connectRe = regexp.MustCompile(`^(\\connect |\\c |CREATE DATABASE |DROP DATABASE )`)
	// grepPattern finds the same lines in a plain dump without reading it into settle.
	grepPattern = `^(ALTER .* OWNER TO |GRANT |REVOKE |ALTER DEFAULT PRIVILEGES FOR ROLE |CREATE EXTENSION |\\connect |\\c |CREATE DATABASE |DROP DATABASE )`
)

// scanNeeds reads the schema SQL of a dump. Ownership is ignored under
// no_owner, since pg_restore --no-owner (or the plain-dump filter) drops it.
func scanNeeds(sql string, noOwner bool) needs {
	roles, exts := map[string]bool{}, map[string]bool{}
	var n needs
	sc := bufio.NewScanner(strings.NewReader(sql))
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	for sc.Scan() {
		l := sc.Text()
		if m := ownerRe.FindStringSubmatch(l); m != nil && !noOwner {
			addRoles(roles, m[1])
		} else if m := grantRe.FindStringSubmatch(l); m != nil {
			addRoles(roles, m[1])
		} else if m := defPrivRe.FindStringSubmatch(l); m != nil {
			addRoles(roles, m[1])
		} else if m := extRe.FindStringSubmatch(l); m != nil {
			exts[unquote(m[1])] = true
		} else if connectRe.MatchString(l) {
			n.connects = true
		}
	}
	n.roles, n.extensions = keys(roles), keys(exts)
	return n
}

func addRoles(set map[string]bool, list string) {
	for _, r := range strings.Split(list, ",") {
		r = strings.TrimSpace(r)
		switch strings.ToUpper(r) {
		case "", "PUBLIC", "CURRENT_USER", "SESSION_USER", "CURRENT_ROLE":
			continue
		}
		set[unquote(r)] = true
	}
}

func unquote(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return strings.ReplaceAll(s[1:len(s)-1], `""`, `"`)
	}
	return s
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// preflight proves, before anything is created, that f can be restored
// here: bytes as the manifest says, a client new enough, every role and
// extension the dump names present, and the live database's locale
// available. It returns the dump's header.
func (r *Reconciler) preflight(ctx context.Context, c *pgx.Conn, f snapshot.File, loc Locale) (snapshot.Header, error) {
	fail := func(err error) (snapshot.Header, error) {
		return snapshot.Header{}, fmt.Errorf("preflight of snapshot %s: %w", f.ID, err)
	}
	// The file checks each read the dump on the host and are independent;
	// run together they cost the slowest, not the sum (the checksum, for a
	// big dump). Errors are reported in this order, the most basic first.
	var (
		hd   snapshot.Header
		n    needs
		errs [3]error
		wg   sync.WaitGroup
	)
	wg.Add(3)
	go func() { defer wg.Done(); _, errs[0] = snapshot.CheckSum(ctx, r.Host, f) }()
	go func() {
		defer wg.Done()
		if hd, errs[1] = snapshot.ReadHeader(ctx, r.Host, r.D.Postgres.BinDir, f); errs[1] == nil {
			tool := "psql"
			if f.Format == snapshot.Custom {
				tool = "pg_restore"
			}
			errs[1] = r.toolNewEnough(ctx, tool, hd)
		}
	}()
	go func() { defer wg.Done(); n, errs[2] = r.dumpNeeds(ctx, f) }()
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return fail(err)
		}
	}
	if n.connects {
		return fail(errors.New("the plain dump creates, drops or connects to databases (made with pg_dump --create or pg_dumpall); settle restores into its own scratch database, so re-dump without --create"))
	}
	if err := missing(ctx, c, "SELECT rolname FROM pg_roles WHERE rolname = ANY($1)", n.roles, func(m []string) error {
		hint := ""
		if !r.D.Postgres.NoOwner {
			hint = ", or set postgres.no_owner = true if they only own objects"
		}
		return fmt.Errorf("the dump needs role(s) %s, which this server lacks: create them (CREATE ROLE %s NOLOGIN)%s",
			strings.Join(m, ", "), ident(m[0]), hint)
	}); err != nil {
		return fail(err)
	}
	if err := missing(ctx, c, "SELECT name FROM pg_available_extensions WHERE name = ANY($1)", n.extensions, func(m []string) error {
		return fmt.Errorf("the dump needs extension(s) %s, which this server cannot install: install the package that provides them (e.g. postgresql-15-%s)",
			strings.Join(m, ", "), m[0])
	}); err != nil {
		return fail(err)
	}
	if err := localeAvailable(ctx, c, loc); err != nil {
		return fail(err)
	}
	return hd, nil
}

// missing runs q with names and reports those it did not return.
func missing(ctx context.Context, c *pgx.Conn, q string, names []string, report func([]string) error) error {
	if len(names) == 0 {
		return nil
	}
	rows, err := c.Query(ctx, q, names)
	if err != nil {
		return err
	}
	found, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, f := range found {
		have[f] = true
	}
	var miss []string
	for _, n := range names {
		if !have[n] {
			miss = append(miss, n)
		}
	}
	if len(miss) == 0 {
		return nil
	}
	return report(miss)
}

func (r *Reconciler) toolNewEnough(ctx context.Context, tool string, hd snapshot.Header) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := r.Host.Run(ctx, reconcilers.Cmd{Argv: []string{r.bin(tool), "--version"}})
	if err != nil {
		return fmt.Errorf("find %s (postgres.bin_dir %q): %w", tool, r.D.Postgres.BinDir, err)
	}
	have, need := snapshot.Major(string(out)), snapshot.Major(hd.DumpedBy)
	if have == 0 || need == 0 || have >= need {
		return nil
	}
	return fmt.Errorf("the dump was made by pg_dump %s but %s is %s: set postgres.bin_dir to the bin directory of PostgreSQL %d or newer",
		hd.DumpedBy, r.bin(tool), strings.TrimSpace(string(out)), need)
}

// dumpNeeds reads the lines that name roles and extensions: from the
// schema-only SQL of a custom dump (small, whatever the data size), or by
// grep over a plain one, so its data never passes through settle.
func (r *Reconciler) dumpNeeds(ctx context.Context, f snapshot.File) (needs, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	var cmd reconcilers.Cmd
	switch f.Format {
	case snapshot.Custom:
		cmd.Argv = []string{r.bin("pg_restore"), "--schema-only", "-f", "-", "--", f.Path}
	case snapshot.SQLGz:
		cmd.Argv = []string{"zgrep", "-E", grepPattern, "--", f.Path}
	default:
		cmd.Argv = []string{"grep", "-E", grepPattern, "--", f.Path}
	}
	out, err := r.Host.Run(ctx, cmd)
	var ce *reconcilers.CmdError
	if err != nil && !(f.Format != snapshot.Custom && errors.As(err, &ce) && ce.ExitCode == 1) { // grep: 1 = no line matched
		return needs{}, fmt.Errorf("read the dump's schema: %w", err)
	}
	return scanNeeds(string(out), r.D.Postgres.NoOwner), nil
}

// localeAvailable asks the server to build a collation from the live
// database's locale inside a transaction it rolls back: the same check
// CREATE DATABASE would make, without creating anything.
func localeAvailable(ctx context.Context, c *pgx.Conn, l Locale) error {
	var probe string
	switch {
	case l.Provider == "i":
		probe = "CREATE COLLATION pg_temp.settle_probe (provider = icu, locale = " + quoteLiteral(l.ICULocale) + ")"
	case builtinLocale(l.Collate) && builtinLocale(l.Ctype):
		return nil
	default:
		probe = "CREATE COLLATION pg_temp.settle_probe (LC_COLLATE = " + quoteLiteral(l.Collate) + ", LC_CTYPE = " + quoteLiteral(l.Ctype) + ")"
	}
	tx, err := c.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, probe); err != nil {
		return fmt.Errorf("the live database's locale (collate %q, ctype %q) is not available on this server: %w; install it (locale-gen) and restart PostgreSQL", l.Collate, l.Ctype, err)
	}
	return nil
}

func builtinLocale(s string) bool { return s == "C" || s == "POSIX" || s == "" }
