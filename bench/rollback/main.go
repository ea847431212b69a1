// Command rollback measures the full rollback the runbook's "< 15 minutes"
// procedure describes, done by settle's agent from one edit: color and
// snapshot of a generated database (100 MB by default) plus the cache, from
// the file's save to the journal's verification of the new generation.
//
// Usage: go run ./bench/rollback [-mb 100] [-settle bin/settle]
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"

	"settle/e2e/sandbox"
)

func main() {
	mb := flag.Int("mb", 100, "size of the generated database in MB")
	bin := flag.String("settle", "bin/settle", "settle binary")
	flag.Parse()
	if err := run(*mb, *bin); err != nil {
		fmt.Fprintln(os.Stderr, "bench/rollback:", err)
		os.Exit(1)
	}
}

func run(mb int, bin string) error {
	bin, _ = filepath.Abs(bin)
	dir, err := os.MkdirTemp("/tmp", "settle-bench-rb-")
	if err != nil {
		return err
	}
	os.Chmod(dir, 0o755)
	defer os.RemoveAll(dir)
	ctx := context.Background()
	s, err := sandbox.Up(ctx, dir, nil)
	if err != nil {
		return err
	}
	defer sandbox.Down(dir)
	env := append(os.Environ(), s.Env()...)
	settle := func(args ...string) error {
		c := exec.Command(bin, args...)
		c.Env = env
		if out, err := c.CombinedOutput(); err != nil {
			return fmt.Errorf("settle %v: %v\n%s", args, err, out)
		}
		return nil
	}
	if err := grow(ctx, s.AppDSN, mb); err != nil {
		return err
	}
	if err := settle("snapshot", "adopt", "-f", s.DesiredPath, "--force", sandbox.SnapshotID); err != nil {
		return err
	}
	if err := settle("apply", "-f", s.DesiredPath); err != nil {
		return err
	}
	t0 := time.Now()
	if err := settle("snapshot", "create", "-f", s.DesiredPath, "--id", "bench_predeploy"); err != nil {
		return err
	}
	snapTook := time.Since(t0)
	edit(s.DesiredPath, `(?m)^active\s*=.*$`, `active = "green"`)
	if err := settle("apply", "-f", s.DesiredPath); err != nil {
		return err
	}
	if err := exec1(ctx, s.AppDSN, "INSERT INTO leads (email) SELECT 'after-' || i FROM generate_series(1, 1000) i"); err != nil {
		return err
	}

	agent := exec.Command(bin, "agent", "-f", s.DesiredPath, "--listen", "off")
	agent.Env = env
	if err := agent.Start(); err != nil {
		return err
	}
	defer func() { agent.Process.Signal(os.Interrupt); agent.Wait() }()
	time.Sleep(1500 * time.Millisecond)

	start := time.Now()
	edit(s.DesiredPath, `(?m)^active\s*=.*$`, `active = "blue"`)
	edit(s.DesiredPath, `(?m)^snapshot\s*=.*$`, `snapshot = "bench_predeploy"`)
	took, err := waitVerified(filepath.Join(s.StateDir, "journal.jsonl"), start, 5*time.Minute)
	if err != nil {
		return err
	}
	fmt.Printf("full rollback by one edit (color + snapshot of a %d MB database + cache), agent running\n", mb)
	fmt.Printf("  save -> verified: %s  (target <= 15s)\n", took.Round(time.Millisecond))
	fmt.Printf("  (snapshot create of the same database took %s)\n", snapTook.Round(time.Millisecond))
	return nil
}

// grow fills the demo database to about mb megabytes.
func grow(ctx context.Context, dsn string, mb int) error {
	return exec1(ctx, dsn, fmt.Sprintf(`CREATE TABLE IF NOT EXISTS ballast (id bigserial PRIMARY KEY, payload text NOT NULL);
INSERT INTO ballast (payload) SELECT md5(i::text) || repeat('x', 900) FROM generate_series(1, %d) AS i;`, mb*1000))
}

func exec1(ctx context.Context, dsn, sql string) error {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer c.Close(ctx)
	_, err = c.Exec(ctx, sql)
	return err
}

func edit(path, re, repl string) {
	b, _ := os.ReadFile(path)
	b = regexp.MustCompile(re).ReplaceAll(b, []byte(repl))
	tmp := path + ".swp"
	os.WriteFile(tmp, b, 0o644)
	os.Rename(tmp, path)
}

// waitVerified waits for a verify event after start and returns its delay.
func waitVerified(journal string, start time.Time, max time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(max)
	for time.Now().Before(deadline) {
		if f, err := os.Open(journal); err == nil {
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 1<<20), 1<<22)
			for sc.Scan() {
				var e struct {
					Time     time.Time
					Event    string
					Outcome  string
					Snapshot string
				}
				if json.Unmarshal(sc.Bytes(), &e) == nil && e.Event == "verify" && e.Time.After(start) && e.Snapshot == "bench_predeploy" {
					f.Close()
					if e.Outcome != "ok" {
						return 0, fmt.Errorf("verification failed after the rollback")
					}
					return e.Time.Sub(start), nil
				}
			}
			f.Close()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return 0, fmt.Errorf("no verification within %s", max)
}
