//go:build e2e

package e2e_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"settle/desired"
	"settle/e2e/sandbox"
	"settle/reconcilers"
	"settle/reconcilers/postgres"
	"settle/reconcilers/sshhost"
)

// sshSandbox is a sandbox with its own sshd: the "VPS".
func sshSandbox(t *testing.T) (*sandbox.Sandbox, *sandbox.SSHD) {
	t.Helper()
	s := sandbox.Start(t)
	d, err := s.StartSSHD(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop() })
	return s, d
}

// laptop writes the sandbox's desired file plus host into a directory of
// its own, as an operator's checkout, and returns its path.
func laptop(t *testing.T, s *sandbox.Sandbox, host string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "checkout", "desired.toml")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(mustRead(t, s.DesiredPath)+"\n"+host), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func hostSection(d *sandbox.SSHD, knownHosts string, extra ...string) string {
	return fmt.Sprintf("[host]\nssh = %q\nidentity = %q\nknown_hosts = %q\n%s", d.User+"@"+d.Addr, d.Identity, knownHosts, strings.Join(extra, "\n"))
}

// settleSSH runs settle as the operator's laptop would: the sandbox's
// secrets in the environment, but no pm2 or nginx on PATH and no agent,
// so anything that is not sent over SSH fails.
func settleSSH(t *testing.T, s *sandbox.Sandbox, args ...string) (int, string, string) {
	t.Helper()
	return settleRunEnv(t, s, []string{"PATH=" + t.TempDir(), "SSH_AUTH_SOCK=", "PM2_HOME=/nonexistent"}, args...)
}

func logins(t *testing.T, d *sandbox.SSHD) int {
	return strings.Count(mustRead(t, filepath.Join(d.Dir, "sshd.log")), "Accepted publickey")
}

func TestSSHPlanAndApplyConverge(t *testing.T) {
	s, d := sshSandbox(t)
	f := laptop(t, s, hostSection(d, d.KnownHosts))
	plan := func() (int, map[string]any) {
		code, out, errOut := settleSSH(t, s, "plan", "-f", f, "--format", "json")
		var v map[string]any
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("plan over ssh: exit %d: %v\nstdout:\n%s\nstderr:\n%s", code, err, out, errOut)
		}
		return code, v
	}
	apply := func() {
		t.Helper()
		if code, out, errOut := settleSSH(t, s, "apply", "-f", f); code != 0 {
			t.Fatalf("apply over ssh: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
	}
	if code, p := plan(); code != 2 || p["in_sync"] != false {
		t.Fatalf("plan before apply: exit %d %v, want 2", code, p)
	}
	apply()
	if c := frontColor(s); c != "blue" {
		t.Fatalf("after apply over ssh nginx serves %q, want blue", c)
	}
	if code, p := plan(); code != 0 || p["in_sync"] != true {
		t.Fatalf("plan after apply: exit %d %v, want 0", code, p)
	}

	// The operator edits the checkout, not the VPS.
	b := regexp.MustCompile(`(?m)^active\s*=\s*"blue"`).ReplaceAll([]byte(mustRead(t, f)), []byte(`active = "green"`))
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _ := plan(); code != 2 {
		t.Fatalf("plan after the edit: exit %d, want 2", code)
	}
	apply()
	if c := frontColor(s); c != "green" {
		t.Fatalf("after the switch over ssh nginx serves %q, want green", c)
	}
	if code, p := plan(); code != 0 {
		t.Fatalf("plan after the switch: exit %d %v, want 0", code, p)
	}
	if !strings.Contains(mustRead(t, s.UpstreamFile), itoa(s.GreenPort)) {
		t.Errorf("upstream file does not name green's port:\n%s", mustRead(t, s.UpstreamFile))
	}
	if n := logins(t, d); n < 4 {
		t.Errorf("sshd saw %d logins for 4 plans and 2 applies", n)
	}
}

func TestSSHRefusesUnverifiedHosts(t *testing.T) {
	s, d := sshSandbox(t)
	mustApply(t, s) // converged locally: blue serves
	upstream := mustRead(t, s.UpstreamFile)
	dir := t.TempDir()

	// A known_hosts that holds another key for this host:port.
	other := filepath.Join(dir, "other_key")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	pub := strings.Fields(mustRead(t, other+".pub"))
	wrong := filepath.Join(dir, "known_hosts_wrong")
	os.WriteFile(wrong, []byte(fmt.Sprintf("[127.0.0.1]:%d %s %s\n", d.Port, pub[0], pub[1])), 0o600)
	f := laptop(t, s, hostSection(d, wrong))
	os.WriteFile(f, bytes.Replace([]byte(mustRead(t, f)), []byte(`active  = "blue"`), []byte(`active  = "green"`), 1), 0o644)
	for _, cmd := range []string{"plan", "apply"} {
		code, out, errOut := settleSSH(t, s, cmd, "-f", f)
		if code != 1 || !strings.Contains(errOut, "HOST KEY MISMATCH") || !strings.Contains(errOut, wrong+":1") {
			t.Fatalf("%s with a changed host key: exit %d\nstdout:\n%s\nstderr:\n%s", cmd, code, out, errOut)
		}
		t.Logf("%s refused: %s", cmd, strings.TrimSpace(errOut))
	}

	// An unknown host: the refusal carries the exact line to add.
	empty := filepath.Join(dir, "known_hosts_empty")
	os.WriteFile(empty, nil, 0o600)
	code, _, errOut := settleSSH(t, s, "apply", "-f", laptop(t, s, hostSection(d, empty)))
	if code != 1 || !strings.Contains(errOut, "host key not known") || !strings.Contains(errOut, "\n"+d.HostKeyLine+"\n") {
		t.Fatalf("apply on an unknown host: exit %d, want the line %q\nstderr:\n%s", code, d.HostKeyLine, errOut)
	}

	// Nothing ran: no login happened, nginx and its upstream are untouched.
	if n := logins(t, d); n != 0 {
		t.Fatalf("sshd accepted %d logins from refused runs", n)
	}
	if got := mustRead(t, s.UpstreamFile); got != upstream {
		t.Fatalf("the upstream file changed:\n%s", got)
	}
	if c := frontColor(s); c != "blue" {
		t.Fatalf("nginx serves %q after refused applies, want blue", c)
	}
}

func TestSSHSilentServerFailsWithinTenSeconds(t *testing.T) {
	s := sandbox.Start(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		var held []net.Conn // accept and never send a banner
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	dir := t.TempDir()
	id := filepath.Join(dir, "id")
	exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", id).Run()
	host := fmt.Sprintf("[host]\nssh = \"root@%s\"\nidentity = %q\nknown_hosts = %q\nconnect_timeout = \"5s\"\n", ln.Addr(), id, filepath.Join(dir, "known_hosts"))
	start := time.Now()
	code, _, errOut := settleSSH(t, s, "plan", "-f", laptop(t, s, host))
	took := time.Since(start)
	t.Logf("silent server refused after %s: %s", took.Round(time.Millisecond), strings.TrimSpace(errOut))
	if code != 1 || !strings.Contains(errOut, "handshake did not finish within 5s") {
		t.Fatalf("plan against a silent server: exit %d\n%s", code, errOut)
	}
	if took > 10*time.Second {
		t.Fatalf("took %s", took)
	}
}

func TestSSHHostileValuesNeverRun(t *testing.T) {
	s, d := sshSandbox(t)
	marker := filepath.Join(s.Dir, "pwned")

	// Validation keeps them out of the desired file in the first place.
	for key, v := range map[string]string{
		`dir        = "` + filepath.Join(s.Dir, "releases", "blue") + `"`: `dir        = "/tmp/x'; touch ` + marker + `; '"`,
		`upstream      = "app_upstream"`:                                  `upstream      = "$(touch ` + marker + `)"`,
	} {
		f := laptop(t, s, hostSection(d, d.KnownHosts))
		src := mustRead(t, f)
		if !strings.Contains(src, key) {
			t.Fatalf("%q not in the desired file", key)
		}
		os.WriteFile(f, []byte(strings.Replace(src, key, v, 1)), 0o644)
		if code, _, errOut := settleSSH(t, s, "plan", "-f", f); code != 1 || !strings.Contains(errOut, "desired.toml:") {
			t.Fatalf("plan with %s: exit %d\n%s", v, code, errOut)
		}
	}
	f := laptop(t, s, fmt.Sprintf("[host]\nssh = \"root@127.0.0.1;touch %s\"\n", marker))
	if code, _, errOut := settleSSH(t, s, "plan", "-f", f); code != 1 || !strings.Contains(errOut, "has a host settle does not accept") {
		t.Fatalf("plan with a hostile ssh target: exit %d\n%s", code, errOut)
	}

	// And the seam quotes whatever reaches it, through the real sshd and
	// the remote user's real login shell.
	h, err := sshhost.Dial(ctxT(t), sshhost.Config{User: d.User, Addr: d.Addr, KnownHosts: d.KnownHosts, Identity: d.Identity})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ctx := ctxT(t)
	for _, v := range []string{"'; touch " + marker + "; '", "$(touch " + marker + ")", "`touch " + marker + "`", "a\ntouch " + marker, "\"; touch " + marker + " #"} {
		out, err := h.Run(ctx, reconcilers.Cmd{Argv: []string{"printf", "%s", v}, Env: []string{"V=" + v}})
		if err != nil || string(out) != v {
			t.Errorf("printf %q over ssh: %q %v", v, out, err)
		}
	}
	name := filepath.Join(s.Dir, "it's $(touch "+filepath.Base(marker)+") `id`.conf")
	if err := h.WriteFile(ctx, name, []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, name); got != "x\n" {
		t.Errorf("remote write: %q", got)
	}
	if _, err := h.ReadFile(ctx, name+".missing"); !reconcilers.IsNotExist(err) {
		t.Errorf("ReadFile of a missing file over ssh: %v", err)
	}
	if _, err := h.Run(ctx, reconcilers.Cmd{Argv: []string{"true", "a\x00b"}}); err == nil {
		t.Error("a NUL byte went through")
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a hostile value ran a command on the remote side")
	}
}

// TestSSHSnapshotRestore rolls the database back to a snapshot with the
// postgres reconciler driving the "VPS" over SSH: pg_dump and pg_restore
// run there, SQL goes through the tunnel.
func TestSSHSnapshotRestore(t *testing.T) {
	s, d := sshSandbox(t)
	t.Setenv("SETTLE_PG_DSN", s.AdminDSN)
	ds, err := desired.Load(s.DesiredPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx := pgCtx(t)
	h, err := sshhost.Dial(ctx, sshhost.Config{User: d.User, Addr: d.Addr, KnownHosts: d.KnownHosts, Identity: d.Identity})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	r := &postgres.Reconciler{Host: h, D: ds}
	if _, err := r.CreateSnapshot(ctx, "ssh_before", nil); err != nil {
		t.Fatalf("snapshot create over ssh: %v", err)
	}
	pgExec(t, ctx, s.AppDSN, "INSERT INTO leads (email) SELECT 'late' || i || '@example.com' FROM generate_series(1, 3) AS i")
	before := queryInt(t, ctx, dsnFor(s, "demo"), "SELECT count(*) FROM leads")
	r.D.Postgres.Snapshot = "ssh_before"
	if ops := pgConverge(t, ctx, r); !slices.Equal(ops, []string{postgres.OpRestore, postgres.OpSwap}) {
		t.Fatalf("rollback over ssh ran %v, want restore then swap", ops)
	}
	if n := queryInt(t, ctx, dsnFor(s, "demo"), "SELECT count(*) FROM leads"); n != before-3 {
		t.Fatalf("live has %d leads after the rollback over ssh, want %d", n, before-3)
	}
}
