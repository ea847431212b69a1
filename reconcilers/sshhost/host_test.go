package sshhost

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"settle/reconcilers"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fixture is a server with an ed25519 host key, a client key and a
// known_hosts file that knows that host key.
type fixture struct {
	srv      *testServer
	identity string
	known    string
}

func newFixture(t *testing.T) fixture {
	id, pub := clientKey(t)
	_, hk := genKey(t, "ed25519")
	srv := startServer(t, pub, hk)
	return fixture{srv: srv, identity: id, known: knownHostsFile(t, srv.addr, hk.PublicKey())}
}

func (f fixture) config() Config {
	return Config{User: "test", Addr: f.srv.addr, KnownHosts: f.known, Identity: f.identity, ConnectTimeout: 5 * time.Second}
}

func dial(t *testing.T, cfg Config) *Host {
	t.Helper()
	h, err := Dial(ctxT(t), cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func TestUnknownHostIsRefusedWithTheLineToAdd(t *testing.T) {
	f := newFixture(t)
	cfg := f.config()
	cfg.KnownHosts = knownHostsFile(t, "other.example:22", f.srv.hostKeys[0].PublicKey())
	_, err := Dial(ctxT(t), cfg)
	if !errors.Is(err, ErrUnknownHost) {
		t.Fatalf("Dial: %v, want ErrUnknownHost", err)
	}
	_, port, _ := net.SplitHostPort(f.srv.addr)
	b, _ := os.ReadFile(knownHostsFile(t, f.srv.addr, f.srv.hostKeys[0].PublicKey()))
	line := strings.TrimSpace(string(b))
	if !strings.HasPrefix(line, "[127.0.0.1]:"+port+" ssh-ed25519 AAAA") || !strings.HasSuffix(err.Error(), "\n"+line) {
		t.Errorf("error does not end with the line to add, %q:\n%v", line, err)
	}
	if n := f.srv.execs.Load(); n != 0 {
		t.Errorf("%d commands ran on an unverified host", n)
	}

	// A missing known_hosts file is the same refusal, not a crash.
	cfg.KnownHosts = filepath.Join(t.TempDir(), "absent")
	if _, err := Dial(ctxT(t), cfg); !errors.Is(err, ErrUnknownHost) || !strings.Contains(err.Error(), line) {
		t.Errorf("missing known_hosts: %v", err)
	}
}

func TestChangedHostKeyIsRefused(t *testing.T) {
	f := newFixture(t)
	_, other := genKey(t, "ed25519")
	cfg := f.config()
	cfg.KnownHosts = knownHostsFile(t, f.srv.addr, other.PublicKey())
	_, err := Dial(ctxT(t), cfg)
	if !errors.Is(err, ErrHostKeyMismatch) {
		t.Fatalf("Dial: %v, want ErrHostKeyMismatch", err)
	}
	for _, want := range []string{"HOST KEY MISMATCH", ssh.FingerprintSHA256(f.srv.hostKeys[0].PublicKey()), ssh.FingerprintSHA256(other.PublicKey()), cfg.KnownHosts + ":1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if n := f.srv.execs.Load(); n != 0 {
		t.Errorf("%d commands ran on a host with the wrong key", n)
	}
}

func TestKnownTypeMissingFromServerIsRefused(t *testing.T) {
	// known_hosts knows an ECDSA key; the server only has ed25519.
	f := newFixture(t)
	_, ec := genKey(t, "ecdsa")
	cfg := f.config()
	cfg.KnownHosts = knownHostsFile(t, f.srv.addr, ec.PublicKey())
	if _, err := Dial(ctxT(t), cfg); !errors.Is(err, ErrHostKeyMismatch) {
		t.Fatalf("Dial: %v, want ErrHostKeyMismatch", err)
	}
}

func TestHostKeyAlgorithmsFollowKnownHosts(t *testing.T) {
	// The server offers ECDSA and ed25519; x/crypto prefers ECDSA. Only the
	// ed25519 key is known, and it must be the one checked.
	id, pub := clientKey(t)
	_, ec := genKey(t, "ecdsa")
	_, ed := genKey(t, "ed25519")
	srv := startServer(t, pub, ec, ed)
	known := knownHostsFile(t, srv.addr, ed.PublicKey())

	// Without the restriction the same known_hosts refuses the host: this
	// is the failure the restriction exists to prevent.
	hk, err := loadKnownHosts(known)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ssh.Dial("tcp", srv.addr, &ssh.ClientConfig{User: "test", Auth: []ssh.AuthMethod{ssh.PublicKeys(ed)}, HostKeyCallback: hk.check})
	if !errors.Is(err, ErrHostKeyMismatch) {
		t.Fatalf("unrestricted dial: %v, want a mismatch on the ECDSA key", err)
	}

	h := dial(t, Config{User: "test", Addr: srv.addr, KnownHosts: known, Identity: id})
	if out, err := h.Run(ctxT(t), reconcilers.Cmd{Argv: []string{"echo", "ok"}}); err != nil || string(out) != "ok\n" {
		t.Fatalf("Run: %q %v", out, err)
	}
	if got := algorithms(hk.known(srv.addr, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})); strings.Join(got, ",") != ssh.KeyAlgoED25519 {
		t.Errorf("algorithms = %v", got)
	}
}

func TestRSAKnownKeyAllowsSHA2Signatures(t *testing.T) {
	got := algorithms([]knownKey{{Key: rsaPub(t)}})
	if strings.Join(got, ",") != "rsa-sha2-512,rsa-sha2-256,ssh-rsa" {
		t.Errorf("algorithms = %v", got)
	}
}

func rsaPub(t *testing.T) ssh.PublicKey {
	// A fixed public key: generating RSA in a unit test is slow.
	const line = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDH0N9bCEpxBJBjdqg9B8ZkBgq0w6qxWQmGNyq1xYzKdAbuBNvQSQJxdCTd3xCtPZcT3jnKzSqb4ew4m6upYUT0n7o1Ib5bFxwQuf8rAdUMuMrrpu0oSl5TIXGnUeq4K6AHA/mGLR0cUAdoJO5L6c7jEWsvQr3Qh9hP8hGWsKsmyQ=="
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSilentServerFailsWithinTheConnectTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // accept, never speak
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	}()
	id, _ := clientKey(t)
	start := time.Now()
	_, err = Dial(context.Background(), Config{User: "test", Addr: ln.Addr().String(), KnownHosts: knownHostsFile(t, "x:22"), Identity: id, ConnectTimeout: 2 * time.Second})
	took := time.Since(start)
	t.Logf("silent server refused after %s", took.Round(time.Millisecond))
	if err == nil || !strings.Contains(err.Error(), "handshake did not finish within 2s") {
		t.Fatalf("Dial: %v", err)
	}
	if took < 2*time.Second || took > 10*time.Second {
		t.Fatalf("took %s, want about the 2s connect timeout", took)
	}
}

func TestRunFilesAndDial(t *testing.T) {
	f := newFixture(t)
	h := dial(t, f.config())
	ctx := ctxT(t)
	if h.String() != "ssh test@"+f.srv.addr {
		t.Errorf("String() = %q", h.String())
	}

	// Exit codes, stdin and the tail; no env value in the error.
	reconcilers.AddSecret("Sup3rS3cretPW")
	_, err := h.Run(ctx, reconcilers.Cmd{Argv: []string{"sh", "-c", "cat; echo oops >&2; exit 3"}, Stdin: []byte("in\n"), Env: []string{"PGPASSWORD=Sup3rS3cretPW"}})
	var ce *reconcilers.CmdError
	if !errors.As(err, &ce) || ce.ExitCode != 3 || ce.Tail != "in | oops" {
		t.Fatalf("Run: %#v", err)
	}
	if strings.Contains(err.Error(), "Sup3rS3cretPW") || strings.Contains(err.Error(), "PGPASSWORD") {
		t.Errorf("error carries the environment: %v", err)
	}
	out, err := h.Run(ctx, reconcilers.Cmd{Argv: []string{"sh", "-c", `printf %s "$PGPASSWORD"`}, Env: []string{"PGPASSWORD=it's $(x)"}})
	if err != nil || string(out) != "it's $(x)" {
		t.Errorf("env value: %q %v", out, err)
	}
	_, err = h.Run(ctx, reconcilers.Cmd{Argv: []string{"no-such-program-settle"}})
	if !errors.As(err, &ce) || ce.ExitCode != 127 {
		t.Errorf("missing program: %v", err)
	}

	// Files, in a directory whose name tries to break out of quoting.
	// The server's sh inherits the marker's path: a name can hold no '/'.
	marker := filepath.Join(t.TempDir(), "pwned")
	t.Setenv("SETTLE_MARKER", marker)
	dir := filepath.Join(t.TempDir(), `'; touch "$SETTLE_MARKER"; '$(touch "$SETTLE_MARKER")`+"`touch $SETTLE_MARKER`")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "up'stream.conf")
	if _, err := h.ReadFile(ctx, p); !reconcilers.IsNotExist(err) {
		t.Fatalf("ReadFile of a missing file: %v, want not-exist", err)
	}
	if err := h.WriteFile(ctx, p, []byte("server 1;\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if b, err := h.ReadFile(ctx, p); err != nil || string(b) != "server 1;\n" {
		t.Fatalf("ReadFile: %q %v", b, err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("mode after WriteFile: %v %v", fi.Mode(), err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("WriteFile left temp files: %v", ents)
	}
	if err := h.Remove(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := h.Remove(ctx, p); err != nil {
		t.Errorf("Remove of a missing file: %v", err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a hostile path ran a command on the server")
	}
	if _, err := h.ReadFile(ctx, "relative/path"); err == nil {
		t.Error("a relative remote path was accepted")
	}
	// A failed write leaves no temp file and the old content.
	if err := h.WriteFile(ctx, filepath.Join(dir, "nodir", "x"), []byte("x"), 0o644); err == nil {
		t.Error("WriteFile into a missing directory succeeded")
	}

	// Dialling goes through the server, and the conn honours deadlines.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		l, _ := bufio.NewReader(c).ReadString('\n')
		fmt.Fprintf(c, "echo %s", l)
		time.Sleep(5 * time.Second)
	}()
	c, err := h.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "hi\n")
	if l, _ := bufio.NewReader(c).ReadString('\n'); l != "echo hi\n" {
		t.Errorf("through the tunnel: %q", l)
	}
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	var ne net.Error
	if _, err := c.Read(make([]byte, 1)); !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("read past the deadline: %v, want a timeout", err)
	}
}

func TestContextEndsARemoteCommand(t *testing.T) {
	f := newFixture(t)
	h := dial(t, f.config())
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := h.Run(ctx, reconcilers.Cmd{Argv: []string{"sleep", "30"}})
	var ce *reconcilers.CmdError
	if !errors.As(err, &ce) || ce.ExitCode != -1 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Run returned after %s", took)
	}
	// The connection survives for the next command.
	if _, err := h.Run(ctxT(t), reconcilers.Cmd{Argv: []string{"true"}}); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentUseSharesOneConnection(t *testing.T) {
	f := newFixture(t)
	h := dial(t, f.config())
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := h.Run(ctxT(t), reconcilers.Cmd{Argv: []string{"echo", fmt.Sprint(i)}})
			if err == nil && string(out) != fmt.Sprintln(i) {
				err = fmt.Errorf("got %q for %d", out, i)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	f.srv.mu.Lock()
	n := len(f.srv.conns)
	f.srv.mu.Unlock()
	if n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

func TestVanishedPeerFailsCommandsAndReconnects(t *testing.T) {
	f := newFixture(t)
	cfg := f.config()
	cfg.Keepalive = 200 * time.Millisecond
	h := dial(t, cfg)
	ran := make(chan error, 1)
	go func() {
		_, err := h.Run(ctxT(t), reconcilers.Cmd{Argv: []string{"sleep", "20"}})
		ran <- err
	}()
	for f.srv.execs.Load() < 2 { // the shell probe, then sleep
		time.Sleep(10 * time.Millisecond)
	}
	f.srv.freeze()
	start := time.Now()
	err := <-ran
	took := time.Since(start)
	if err == nil || took > 3*time.Second {
		t.Fatalf("Run on a vanished peer: %v after %s, want an error within a few keepalives", err, took)
	}
	t.Logf("vanished peer noticed after %s: %v", took.Round(time.Millisecond), err)
	if _, err := h.Run(ctxT(t), reconcilers.Cmd{Argv: []string{"true"}}); err != nil {
		t.Fatalf("after the peer came back: %v", err)
	}
}

func TestIdentityChecks(t *testing.T) {
	f := newFixture(t)
	cfg := f.config()
	if err := os.Chmod(cfg.Identity, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Dial(ctxT(t), cfg); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable key: %v", err)
	}
	cfg.Identity = ""
	t.Setenv("SSH_AUTH_SOCK", "")
	if _, err := Dial(ctxT(t), cfg); err == nil || !strings.Contains(err.Error(), "SSH_AUTH_SOCK") {
		t.Errorf("no identity and no agent: %v", err)
	}
	id2, _ := clientKey(t)
	cfg.Identity = id2
	if _, err := Dial(ctxT(t), cfg); err == nil || !strings.Contains(err.Error(), "refused our key") {
		t.Errorf("unauthorized key: %v", err)
	}
	if n := f.srv.execs.Load(); n != 0 {
		t.Errorf("%d commands ran", n)
	}
}

func TestAgentAuthentication(t *testing.T) {
	k, s := genKey(t, "ed25519")
	_, hk := genKey(t, "ed25519")
	srv := startServer(t, s.PublicKey(), hk)
	ring := agent.NewKeyring()
	if err := ring.Add(agent.AddedKey{PrivateKey: k}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go agent.ServeAgent(ring, c)
		}
	}()
	t.Setenv("SSH_AUTH_SOCK", sock)
	h := dial(t, Config{User: "test", Addr: srv.addr, KnownHosts: knownHostsFile(t, srv.addr, hk.PublicKey())})
	if out, err := h.Run(ctxT(t), reconcilers.Cmd{Argv: []string{"echo", "via agent"}}); err != nil || string(out) != "via agent\n" {
		t.Fatalf("Run: %q %v", out, err)
	}
}

func TestSecretEnvNeverOnTheRemoteCommandLine(t *testing.T) {
	f := newFixture(t)
	h := dial(t, f.config())
	const pw = "canary-pw-9d2e"
	out, err := h.Run(ctxT(t), reconcilers.Cmd{Argv: []string{"sh", "-c", `printf '%s|%s' "$PGPASSWORD" "$PGHOST"`},
		Env: []string{"PGPASSWORD=" + pw, "PGHOST=db"}})
	if err != nil || string(out) != pw+"|db" {
		t.Fatalf("env did not arrive: %q %v", out, err)
	}
	f.srv.mu.Lock()
	defer f.srv.mu.Unlock()
	for _, l := range f.srv.lines {
		if strings.Contains(l, pw) {
			t.Fatalf("the password rode on a remote command line, visible in ps: %q", l)
		}
		if strings.Contains(l, "PGHOST") && !strings.Contains(l, "'PGHOST=db'") {
			t.Errorf("a plain variable was moved too: %q", l)
		}
	}
}
