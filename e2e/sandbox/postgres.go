package sandbox

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"settle/reconcilers/postgres"
)

// defaultPGBinDir is where Debian's postgresql-15 puts its server binaries.
const defaultPGBinDir = "/usr/lib/postgresql/15/bin"

// pgBinDir finds PostgreSQL 15's binaries. The versioned Debian path wins over
// pg_config because pg_config reports the newest installed major, and the
// sandbox promises 15.
func pgBinDir() (string, error) {
	if isExec(filepath.Join(defaultPGBinDir, "initdb")) {
		return defaultPGBinDir, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "pg_config", "--bindir").Output(); err == nil {
		d := strings.TrimSpace(string(out))
		if isExec(filepath.Join(d, "initdb")) {
			return d, nil
		}
	}
	return "", fmt.Errorf("postgres: no initdb in %s nor in pg_config --bindir; run scripts/install-deps", defaultPGBinDir)
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

func pgDSN(user, pw string, port int, db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(user, pw),
		Host:     "127.0.0.1:" + strconv.Itoa(port),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

func (s *Sandbox) pgDir() string     { return filepath.Join(s.Dir, "pg") }
func (s *Sandbox) pgData() string    { return filepath.Join(s.pgDir(), "data") }
func (s *Sandbox) pgSockDir() string { return filepath.Join(s.pgDir(), "run") }
func (s *Sandbox) pgBin(n string) string {
	return filepath.Join(s.PGBinDir, n)
}

// upPostgres creates a cluster, starts it, creates the roles and the demo
// database, and takes the first snapshot.
func (s *Sandbox) upPostgres(ctx context.Context, adminPW, appPW string) error {
	if err := os.MkdirAll(s.pgSockDir(), 0o700); err != nil {
		return err
	}
	if err := chownPostgres(s.pgDir()); err != nil {
		return err
	}
	if _, err := run(ctx, command{args: asPostgres(s.pgBin("initdb"),
		"-D", s.pgData(), "-U", "postgres", "-E", "UTF8", "--locale=C",
		"--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync", "--no-instructions")}); err != nil {
		return err
	}
	// Speed over durability: this cluster lives for one test run.
	conf := fmt.Sprintf(`
# settle sandbox
port = %d
listen_addresses = '127.0.0.1'
unix_socket_directories = '%s'
password_encryption = 'scram-sha-256'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 50
shared_buffers = 32MB
logging_collector = off
`, s.PGPort, s.pgSockDir())
	f, err := os.OpenFile(filepath.Join(s.pgData(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(conf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if _, err := run(ctx, command{args: asPostgres(s.pgBin("pg_ctl"), "start",
		"-D", s.pgData(), "-l", filepath.Join(s.pgDir(), "postgres.log"), "-w", "-t", "30")}); err != nil {
		return err
	}
	if err := s.pgSetup(ctx, adminPW, appPW); err != nil {
		return err
	}
	_, err = run(ctx, command{args: []string{s.pgBin("pg_dump"),
		"-h", s.pgSockDir(), "-p", strconv.Itoa(s.PGPort), "-U", "postgres",
		"-d", "demo", "-Fc", "-f", filepath.Join(s.SnapshotDir, SnapshotID+".dump")}})
	if err != nil {
		return err
	}
	return s.adopt(ctx)
}

// adopt marks demo as holding the first snapshot, as an operator does with
// `settle snapshot adopt` when settle takes over a database: without it the
// first apply would rightly refuse to guess what the database holds.
func (s *Sandbox) adopt(ctx context.Context) error {
	sock := fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=disable", s.pgSockDir(), s.PGPort)
	conn, err := pgx.Connect(ctx, sock)
	if err != nil {
		return fmt.Errorf("connect via socket: %w", err)
	}
	defer conn.Close(context.Background())
	m := postgres.Marker{Role: postgres.RoleLive, Snapshot: SnapshotID, At: time.Now(), How: "adopted"}
	// The marker is made of validated IDs and a timestamp: no quote in it.
	_, err = conn.Exec(ctx, "COMMENT ON DATABASE demo IS '"+m.Format()+"'")
	return err
}

// pgSetup runs as the bootstrap superuser over the private unix socket (trust
// auth there), then builds the table as demo_app over TCP, which also proves
// the scram path works.
func (s *Sandbox) pgSetup(ctx context.Context, adminPW, appPW string) error {
	sock := fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=disable", s.pgSockDir(), s.PGPort)
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, sock)
	if err != nil {
		return fmt.Errorf("connect via socket: %w", err)
	}
	defer conn.Close(context.Background())
	// Passwords are hex (see secret), so literal quoting is safe.
	for _, q := range []string{
		"CREATE ROLE settle_admin LOGIN SUPERUSER PASSWORD '" + adminPW + "'",
		"CREATE ROLE demo_app LOGIN PASSWORD '" + appPW + "'",
		"CREATE DATABASE demo OWNER demo_app",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("setup roles: %w", redactErr(err, adminPW, appPW))
		}
	}
	app, err := pgx.Connect(ctx, s.AppDSN)
	if err != nil {
		return fmt.Errorf("connect as demo_app: %w", redactErr(err, appPW))
	}
	defer app.Close(context.Background())
	_, err = app.Exec(ctx, `
CREATE TABLE leads (
    id serial PRIMARY KEY,
    email text NOT NULL,
    created_at timestamptz DEFAULT now()
);
INSERT INTO leads (email) SELECT 'lead' || i || '@example.com' FROM generate_series(1, 5) AS i;`)
	if err != nil {
		return fmt.Errorf("create leads: %w", err)
	}
	return nil
}

func chownPostgres(dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return fmt.Errorf("need OS user postgres (install postgresql-15): %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}
