//go:build e2e

package e2e_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"settle/desired"
	"settle/e2e/sandbox"
	"settle/reconcilers"
	"settle/reconcilers/redis"
)

func rdSetup(t *testing.T) (*sandbox.Sandbox, *redis.Reconciler) {
	t.Helper()
	sb := sandbox.Start(t)
	t.Setenv("REDIS_PASSWORD", sb.RedisPassword)
	d, err := desired.Load(sb.DesiredPath)
	if err != nil {
		t.Fatal(err)
	}
	return sb, &redis.Reconciler{Host: reconcilers.Local{}, D: d}
}

func rdPlan(t *testing.T, ctx context.Context, r *redis.Reconciler) reconcilers.Resource {
	t.Helper()
	o, err := r.Observe(ctx)
	if err != nil {
		t.Fatalf("observe: %v", err)
	}
	return redis.Plan(r.D, o)
}

// rdConverge applies the plan and proves the next plan is empty; it
// returns how many flushes ran.
func rdConverge(t *testing.T, ctx context.Context, r *redis.Reconciler) int {
	t.Helper()
	res := rdPlan(t, ctx, r)
	for _, a := range res.Actions {
		if err := r.Apply(ctx, a); err != nil {
			t.Fatalf("apply %s: %v", a.Op, err)
		}
	}
	if after := rdPlan(t, ctx, r); after.Status != reconcilers.InSync {
		t.Fatalf("not in sync after apply: %+v", after)
	}
	return len(res.Actions)
}

func rd(t *testing.T, ctx context.Context, sb *sandbox.Sandbox, args ...string) string {
	t.Helper()
	v, err := sandbox.RedisCommand(ctx, sb.RedisAddr, sb.RedisPassword, args...)
	if err != nil {
		t.Fatalf("redis %s: %v", args[0], err)
	}
	return v
}

func TestRedisFlushedOncePerSnapshotChange(t *testing.T) {
	sb, r := rdSetup(t)
	ctx := pgCtx(t)
	rd(t, ctx, sb, "SET", "page:home", "old data")

	// No marker: settle never managed this cache, so it is flushed once.
	res := rdPlan(t, ctx, r)
	if res.Status != reconcilers.Drifted || len(res.Actions) != 1 || res.Name != sb.RedisAddr+"/0" {
		t.Fatalf("first sight: %+v", res)
	}
	if n := rdConverge(t, ctx, r); n != 1 {
		t.Fatalf("flushes = %d", n)
	}
	if v := rd(t, ctx, sb, "EXISTS", "page:home"); v != ":0" {
		t.Fatalf("page:home survived the flush: %s", v)
	}
	if v := rd(t, ctx, sb, "GET", "settle:snapshot"); v != "demo_initial serial=0" {
		t.Fatalf("marker = %q", v)
	}

	// Running again flushes nothing: the cache warmed since stays.
	rd(t, ctx, sb, "SET", "page:home", "new data")
	if n := rdConverge(t, ctx, r); n != 0 {
		t.Fatalf("second apply flushed %d times", n)
	}
	if flushed, err := r.Flush(ctx, redis.WantMarker(r.D)); err != nil || flushed {
		t.Fatalf("a repeated flush action flushed (%v, %v)", flushed, err)
	}
	if v := rd(t, ctx, sb, "GET", "page:home"); v != "new data" {
		t.Fatalf("page:home = %q after a no-op apply", v)
	}

	// A new snapshot flushes again; a serial bump too.
	r.D.Postgres.Snapshot = "before_import"
	if n := rdConverge(t, ctx, r); n != 1 || rd(t, ctx, sb, "EXISTS", "page:home") != ":0" {
		t.Fatalf("snapshot change: %d flushes", n)
	}
	r.D.Postgres.RestoreSerial = 1
	if n := rdConverge(t, ctx, r); n != 1 {
		t.Fatalf("serial bump: %d flushes", n)
	}

	// key_prefix flushes only its own keys, in any db.
	r.D.Redis.KeyPrefix = "cache:"
	rd(t, ctx, sb, "MSET", "cache:a", "1", "cache:b", "2", "session:x", "keep")
	if n := rdConverge(t, ctx, r); n != 1 {
		t.Fatalf("prefix: %d flushes", n)
	}
	if rd(t, ctx, sb, "EXISTS", "cache:a") != ":0" || rd(t, ctx, sb, "EXISTS", "cache:b") != ":0" || rd(t, ctx, sb, "GET", "session:x") != "keep" {
		t.Fatalf("prefix flush removed the wrong keys")
	}

	// Off means settle does not touch the cache at all.
	r.D.Redis.FlushOnSnapshotChange = false
	r.D.Postgres.Snapshot = "another"
	if n := rdConverge(t, ctx, r); n != 0 || rd(t, ctx, sb, "GET", "session:x") != "keep" {
		t.Fatalf("flag off flushed")
	}
}

func TestRedisRefusalsAreClearAndSecret(t *testing.T) {
	sb, r := rdSetup(t)
	ctx := pgCtx(t)
	check := func(err error, want string, secrets ...string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("err = %v, want %q", err, want)
		}
		for _, s := range secrets {
			if strings.Contains(err.Error(), s) {
				t.Fatalf("error carries a password: %v", err)
			}
		}
		t.Logf("%v", err)
	}
	t.Setenv("REDIS_PASSWORD", "wrong-password-1234")
	_, err := r.Observe(ctx)
	check(err, "WRONGPASS", "wrong-password-1234", sb.RedisPassword)

	r.D.Redis.PasswordEnv = ""
	_, err = r.Observe(ctx)
	check(err, "NOAUTH", sb.RedisPassword)

	r.D.Redis.PasswordEnv = "REDIS_PASSWORD"
	t.Setenv("REDIS_PASSWORD", sb.RedisPassword)
	rd(t, ctx, sb, "ACL", "SETUSER", "default", "-flushdb")
	_, err = r.Flush(ctx, "x serial=0")
	check(err, "NOPERM", sb.RedisPassword)
	rd(t, ctx, sb, "ACL", "SETUSER", "default", "+@all")

	// The sandbox cannot rename commands at run time, so a second server
	// with FLUSHDB disabled and then turned into a replica stands in.
	addr := startRedis(t, ctx, `rename-command FLUSHDB ""`)
	r.D.Redis.Addr, r.D.Redis.PasswordEnv = addr, ""
	_, err = r.Flush(ctx, "x serial=0")
	check(err, "renamed or disabled")
	if _, err := sandbox.RedisCommand(ctx, addr, "", "REPLICAOF", "127.0.0.1", "1"); err != nil {
		t.Fatal(err)
	}
	r.D.Redis.KeyPrefix = "cache:"
	_, err = r.Flush(ctx, "x serial=0")
	check(err, "READONLY")
}

// startRedis runs a password-less redis-server with extra config lines on
// a free port until the test ends.
func startRedis(t *testing.T, ctx context.Context, extra string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	conf := filepath.Join(dir, "redis.conf")
	body := fmt.Sprintf("bind 127.0.0.1\nport %d\ndir %s\nsave \"\"\nappendonly no\n%s\n", port, dir, extra)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("redis-server", conf)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := sandbox.RedisCommand(ctx, addr, "", "PING"); err == nil {
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis on %s did not start", addr)
		}
	}
}
