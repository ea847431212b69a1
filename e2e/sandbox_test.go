//go:build e2e

// Package e2e_test runs settle's end-to-end tests against real services
// brought up by settle/e2e/sandbox.
package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"settle/e2e/sandbox"
)

func TestSandboxServicesAreReal(t *testing.T) {
	s := sandbox.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	if n := queryInt(t, ctx, s.AppDSN, "SELECT count(*) FROM leads"); n != 5 {
		t.Fatalf("leads count = %d, want 5", n)
	}
	if n := queryInt(t, ctx, s.AdminDSN, "SELECT count(*) FROM pg_roles WHERE rolname = current_user AND rolsuper"); n != 1 {
		t.Fatalf("settle_admin is not a superuser")
	}
	if fi, err := os.Stat(filepath.Join(s.SnapshotDir, "demo_initial.dump")); err != nil || fi.Size() == 0 {
		t.Fatalf("initial snapshot missing or empty: %v", err)
	}
	for _, f := range []string{s.EnvPath, filepath.Join(s.Dir, "sandbox.json")} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: want mode 0600, got %v (%v)", f, fi.Mode().Perm(), err)
		}
	}
	if l, err := sandbox.Load(s.Dir); err != nil || *l != *s {
		t.Fatalf("Load did not return what Up wrote: %v", err)
	}

	if r, err := sandbox.RedisCommand(ctx, s.RedisAddr, s.RedisPassword, "PING"); err != nil || r != "+PONG" {
		t.Fatalf("redis PING with password = %q, %v", r, err)
	}
	if r, err := sandbox.RedisCommand(ctx, s.RedisAddr, "", "PING"); err == nil || !strings.Contains(r, "NOAUTH") {
		t.Fatalf("redis PING without password = %q, %v; want NOAUTH", r, err)
	}

	if procs := pm2List(t, ctx, s); len(procs) != 0 {
		t.Fatalf("pm2 should start empty, has %d processes", len(procs))
	}
	if code, _ := get(t, s.FrontURL); code != http.StatusBadGateway {
		t.Fatalf("nginx before app start: status %d, want 502", code)
	}

	startBlue(t, ctx, s)
	waitHealthy(t, s.FrontURL, "blue")
	leadsURL := strings.TrimSuffix(s.FrontURL, "/health") + "/leads"
	code, body := get(t, leadsURL)
	var leads struct {
		Count int    `json:"count"`
		Color string `json:"color"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &leads) != nil || leads.Count != 5 || leads.Color != "blue" {
		t.Fatalf("leads through nginx: %d %s", code, body)
	}
	procs := pm2List(t, ctx, s)
	if len(procs) != 1 || procs[0].Name != "demo-blue" || procs[0].Env.Status != "online" {
		t.Fatalf("pm2 jlist after start: %+v", procs)
	}
	if procs[0].Env.AppSecret != s.AppSecret {
		t.Fatalf("canary APP_SECRET not in pm2 env")
	}

	log, err := os.ReadFile(filepath.Join(s.NginxPrefix, "logs", "access.log"))
	if err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`(?m)^\S+T\S+ 200 [0-9.]+ 127\.0\.0\.1:\d+ "GET /api/leads HTTP/1\.1"$`)
	if !line.Match(log) {
		t.Fatalf("access.log not in the settle format:\n%s", log)
	}

	if err := sandbox.Down(s.Dir); err != nil {
		t.Fatalf("down: %v", err)
	}
	assertGone(t, s)
}

func TestSandboxTwoAtOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var (
		wg   sync.WaitGroup
		sbs  [2]*sandbox.Sandbox
		errs [2]error
	)
	for i := range sbs {
		dir, err := os.MkdirTemp("/tmp", "settle-sbx-")
		if err != nil {
			t.Fatal(err)
		}
		os.Chmod(dir, 0o755)
		t.Cleanup(func() {
			if err := sandbox.Down(dir); err != nil {
				t.Errorf("down %s: %v", dir, err)
			}
			os.RemoveAll(dir)
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			sbs[i], errs[i] = sandbox.Up(ctx, dir, t.Logf)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("up: %v", err)
		}
	}
	if sbs[0].NginxPort == sbs[1].NginxPort || sbs[0].PGPort == sbs[1].PGPort {
		t.Fatalf("sandboxes share ports")
	}
	pids := map[string]bool{}
	for _, s := range sbs {
		if n := queryInt(t, ctx, s.AppDSN, "SELECT count(*) FROM leads"); n != 5 {
			t.Fatalf("%s: leads = %d", s.Dir, n)
		}
		if r, err := sandbox.RedisCommand(ctx, s.RedisAddr, s.RedisPassword, "PING"); err != nil || r != "+PONG" {
			t.Fatalf("%s: redis PING = %q, %v", s.Dir, r, err)
		}
		startBlue(t, ctx, s)
	}
	for _, s := range sbs {
		pids[waitHealthy(t, s.FrontURL, "blue")] = true
	}
	if len(pids) != 2 {
		t.Fatalf("both fronts answered from the same app process")
	}
	for _, s := range sbs {
		if err := sandbox.Down(s.Dir); err != nil {
			t.Fatalf("down %s: %v", s.Dir, err)
		}
		assertGone(t, s)
	}
}

func queryInt(t *testing.T, ctx context.Context, dsn, q string) int {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

type pm2Proc struct {
	Name string `json:"name"`
	Env  struct {
		Status    string `json:"status"`
		AppSecret string `json:"APP_SECRET"`
	} `json:"pm2_env"`
}

func pm2(t *testing.T, ctx context.Context, s *sandbox.Sandbox, dir string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "pm2", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), s.Env()...)
	out, err := cmd.Output()
	if err != nil {
		// Not printing out: pm2 echoes the app env, which holds secrets.
		t.Fatalf("pm2 %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func pm2List(t *testing.T, ctx context.Context, s *sandbox.Sandbox) []pm2Proc {
	t.Helper()
	out := pm2(t, ctx, s, s.Dir, "jlist")
	var procs []pm2Proc
	if err := json.Unmarshal(out, &procs); err != nil || procs == nil {
		t.Fatalf("pm2 jlist is not a JSON array (%d bytes): %v", len(out), err)
	}
	return procs
}

func startBlue(t *testing.T, ctx context.Context, s *sandbox.Sandbox) {
	t.Helper()
	dir := filepath.Join(s.Dir, "releases", "blue")
	pm2(t, ctx, s, dir, "start", "ecosystem.config.js", "--only", "demo-blue")
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitHealthy polls url until it answers 200 with the color, and returns the
// app's pid.
func waitHealthy(t *testing.T, url, color string) string {
	t.Helper()
	var code int
	var body string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		code, body = get(t, url)
		var h struct {
			Status string `json:"status"`
			Color  string `json:"color"`
			Pid    int    `json:"pid"`
		}
		if code == 200 && json.Unmarshal([]byte(body), &h) == nil && h.Status == "ok" && h.Color == color {
			return fmt.Sprint(h.Pid)
		}
	}
	t.Fatalf("%s never healthy as %s: last %d %s", url, color, code, body)
	return ""
}

func assertGone(t *testing.T, s *sandbox.Sandbox) {
	t.Helper()
	if p := sandbox.Processes(s.Dir); len(p) != 0 {
		t.Fatalf("processes still tied to %s after down: %v", s.Dir, p)
	}
	for _, port := range []int{s.NginxPort, s.BluePort, s.PGPort, s.RedisPort} {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
			c.Close()
			t.Fatalf("port %d still listening after down", port)
		}
	}
}
