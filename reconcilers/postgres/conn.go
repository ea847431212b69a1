package postgres

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"settle/reconcilers"
	"settle/snapshot"
)

// connectTimeout bounds every connection attempt; a server that does not
// answer within it is reported, not waited on.
const connectTimeout = 10 * time.Second

// config parses the DSN that dsn_env names. The whole DSN and its password
// are registered as secrets before anything can print them.
func (r *Reconciler) config() (*pgx.ConnConfig, error) {
	name := r.D.Postgres.DSNEnv
	dsn := os.Getenv(name)
	if dsn == "" {
		return nil, fmt.Errorf("read DSN: environment variable %s is empty or unset; export it in settle's environment (postgres.dsn_env names it)", name)
	}
	reconcilers.AddSecret(dsn)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse DSN from $%s: %s", name, reconcilers.Redact(err.Error()))
	}
	reconcilers.AddSecret(cfg.Password)
	cfg.DialFunc = r.Host.DialContext
	// The host resolves names, so a remote host's view of DNS is the one used.
	cfg.LookupFunc = func(_ context.Context, host string) ([]string, error) { return []string{host}, nil }
	cfg.ConnectTimeout = connectTimeout
	return cfg, nil
}

// adminDB is where settle connects to create, rename and drop databases:
// the DSN's own database, unless that is one settle is about to rename.
func (r *Reconciler) adminDB(cfg *pgx.ConnConfig) string {
	live := r.D.Postgres.Database
	db := cfg.Database
	if db == "" || db == live || db == ScratchName(live) || strings.HasPrefix(db, KeptPrefix(live)) {
		return "postgres"
	}
	return db
}

// connect opens a connection to db ("" = the admin database).
func (r *Reconciler) connect(ctx context.Context, db string) (*pgx.Conn, error) {
	cfg, err := r.config()
	if err != nil {
		return nil, err
	}
	if db == "" {
		db = r.adminDB(cfg)
	}
	cfg.Database = db
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to database %s on %s:%d as %s: %s", db, cfg.Host, cfg.Port, cfg.User, reconcilers.Redact(err.Error()))
	}
	if c.PgConn().ParameterStatus("standard_conforming_strings") != "on" {
		c.Close(context.Background())
		return nil, fmt.Errorf("connect to database %s: standard_conforming_strings is off; settle quotes comments assuming it is on", db)
	}
	return c, nil
}

var sslKeyRe = regexp.MustCompile(`(?:^|[?&\s])(sslmode|sslrootcert|sslcert|sslkey)=([^&\s]+)`)

// toolEnv is the environment for pg_dump, pg_restore and psql: connection
// parameters as PG* variables, so the password travels in PGPASSWORD and
// never on argv, where ps would show it.
func (r *Reconciler) toolEnv(db string) ([]string, error) {
	cfg, err := r.config()
	if err != nil {
		return nil, err
	}
	env := []string{
		"PGHOST=" + cfg.Host,
		"PGPORT=" + strconv.Itoa(int(cfg.Port)),
		"PGUSER=" + cfg.User,
		"PGDATABASE=" + db,
		"PGAPPNAME=settle",
		"PGCONNECT_TIMEOUT=10",
		"PGOPTIONS=", // a stray statement_timeout from the environment must not cut a restore short
	}
	if cfg.Password != "" {
		env = append(env, "PGPASSWORD="+cfg.Password)
	}
	for _, m := range sslKeyRe.FindAllStringSubmatch(os.Getenv(r.D.Postgres.DSNEnv), -1) {
		env = append(env, "PG"+strings.ToUpper(m[1])+"="+m[2])
	}
	return env, nil
}

func (r *Reconciler) bin(name string) string { return snapshot.Bin(r.D.Postgres.BinDir, name) }

// ident quotes one identifier for SQL.
func ident(name string) string { return pgx.Identifier{name}.Sanitize() }
