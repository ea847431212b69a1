package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"time"
)

// cmdTimeout bounds any single helper command so a wedged tool can never hang
// Up or Down forever.
const cmdTimeout = 30 * time.Second

// command describes one argv invocation. Secrets go in env, never in args,
// because argv is world-readable in /proc.
type command struct {
	args    []string
	env     []string // appended to os.Environ()
	dir     string
	timeout time.Duration
}

// run executes c and returns its combined output. The error carries a tail of
// that output, with every known secret masked, so failures are diagnosable
// without leaking passwords.
func run(ctx context.Context, c command, secrets ...string) (string, error) {
	t := c.timeout
	if t == 0 {
		t = cmdTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, t)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.args[0], c.args[1:]...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), c.env...)
	// Daemons forked by the command may inherit our pipes; don't wait on them.
	cmd.WaitDelay = 2 * time.Second
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	s := out.String()
	if err != nil {
		return s, fmt.Errorf("%s: %w: %s", strings.Join(c.args, " "), err, redact(tail(s, 600), secrets...))
	}
	return s, nil
}

// asPostgres wraps argv so it runs as the unprivileged OS user postgres when
// we are root: the server refuses to run as root.
func asPostgres(args ...string) []string {
	if os.Geteuid() != 0 {
		return args
	}
	return append([]string{"runuser", "-u", "postgres", "--"}, args...)
}

func redact(s string, secrets ...string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "***")
		}
	}
	return s
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// secret returns a random hex string: safe inside SQL literals, URLs, TOML and
// config files without any quoting.
func secret() string {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// freePorts reserves n distinct loopback ports by holding all listeners open
// until every one is picked, then releases them for the services to bind.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// poll calls f every interval until it returns nil or ctx/timeout expires,
// returning the last error.
func poll(ctx context.Context, timeout, interval time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(interval):
		}
	}
}
