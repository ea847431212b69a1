package sshhost

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"path"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"settle/reconcilers"
)

// Run executes c on the remote host; see reconcilers.Host.
func (h *Host) Run(ctx context.Context, c reconcilers.Cmd) ([]byte, error) {
	line, err := h.line(ctx, c)
	if err != nil {
		return nil, &reconcilers.CmdError{Argv: redactArgv(c.Argv), ExitCode: -1, Err: err}
	}
	var stdin io.Reader
	if c.Stdin != nil {
		stdin = bytes.NewReader(c.Stdin)
	}
	return h.runLine(ctx, line, c.Argv, stdin, c.SecretStdout)
}

// Stream runs c with stdin and stdout as streams, for dumps too large to
// hold in memory (reconcilers/postgres looks for this method).
func (h *Host) Stream(ctx context.Context, c reconcilers.Cmd, stdin io.Reader, stdout io.Writer) error {
	line, err := h.line(ctx, c)
	if err != nil {
		return &reconcilers.CmdError{Argv: redactArgv(c.Argv), ExitCode: -1, Err: err}
	}
	var stderr bytes.Buffer
	if err := h.exec(ctx, line, stdin, stdout, &stderr); err != nil {
		return cmdError(c.Argv, err, tail(stderr.Bytes()))
	}
	return nil
}

// line is the remote command line for c, with its secret environment
// loaded from a file rather than carried on the line.
func (h *Host) line(ctx context.Context, c reconcilers.Cmd) (string, error) {
	if _, err := Command(c); err != nil {
		return "", err // refused before anything lands on the remote host
	}
	c, prefix, err := h.stashSecrets(ctx, c)
	if err != nil {
		return "", err
	}
	line, err := Command(c)
	return prefix + line, err
}

func (h *Host) runLine(ctx context.Context, line string, argv []string, stdin io.Reader, secretStdout bool) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	err := h.exec(ctx, line, stdin, &stdout, &stderr)
	if err == nil {
		return stdout.Bytes(), nil
	}
	out := stderr.Bytes()
	if !secretStdout {
		out = append(stdout.Bytes(), out...)
	}
	return stdout.Bytes(), cmdError(argv, err, tail(out))
}

// exitError is how a remote command ended when it did not exit 0.
type exitError struct {
	code int // -1 when it did not exit
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func cmdError(argv []string, err error, tail string) error {
	ce := &reconcilers.CmdError{Argv: redactArgv(argv), ExitCode: -1, Err: err, Tail: tail}
	var ee *exitError
	if errors.As(err, &ee) {
		ce.ExitCode, ce.Err = ee.code, ee.err
	}
	return ce
}

// exec runs one remote command line on its own session. The context ends
// the session: the remote program is signalled and the channel closed.
func (h *Host) exec(ctx context.Context, line string, stdin io.Reader, stdout, stderr io.Writer) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, reconcilers.DefaultTimeout)
		defer cancel()
	}
	select {
	case h.sem <- struct{}{}:
		defer func() { <-h.sem }()
	case <-ctx.Done():
		return ctx.Err()
	}
	sess, err := h.session(ctx)
	if err != nil {
		return err
	}
	defer sess.Close()
	sess.Stdin, sess.Stdout, sess.Stderr = stdin, stdout, stderr
	if err := sess.Start(line); err != nil {
		return fmt.Errorf("start remote command: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		sess.Signal(ssh.SIGKILL) // OpenSSH 7.9+; closing the channel is the fallback
		sess.Close()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
		}
		return &exitError{code: -1, err: ctx.Err()}
	}
	var ee *ssh.ExitError
	var em *ssh.ExitMissingError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ee) && ee.Signal() != "":
		return &exitError{code: -1, err: fmt.Errorf("killed by signal %s", ee.Signal())}
	case errors.As(err, &ee):
		return &exitError{code: ee.ExitStatus(), err: err}
	case errors.As(err, &em):
		return &exitError{code: -1, err: errors.New("the connection ended before the command reported an exit status")}
	}
	return &exitError{code: -1, err: err}
}

// session opens a session, reconnecting once if the connection turns out
// dead: nothing has run yet, so retrying cannot run anything twice.
func (h *Host) session(ctx context.Context) (*ssh.Session, error) {
	for attempt := 0; ; attempt++ {
		c, err := h.conn(ctx)
		if err != nil {
			return nil, err
		}
		s, err := c.NewSession()
		if err == nil {
			return s, nil
		}
		var oce *ssh.OpenChannelError
		if errors.As(err, &oce) || attempt > 0 {
			return nil, fmt.Errorf("ssh %s: open session: %w", h.target(), err)
		}
		h.drop(c)
	}
}

// notExist is the exit status of ReadFile's script for a missing file:
// cat never exits with it, and no locale-dependent message is parsed.
const notExist = 66

func (h *Host) ReadFile(ctx context.Context, p string) ([]byte, error) {
	if err := checkPath(p); err != nil {
		return nil, &fs.PathError{Op: "read", Path: p, Err: err}
	}
	q := Quote(p)
	out, err := h.runLine(ctx, fmt.Sprintf("[ -e %s ] || exit %d; exec cat -- %s", q, notExist, q),
		[]string{"cat", "--", p}, nil, false)
	var ce *reconcilers.CmdError
	if errors.As(err, &ce) && ce.ExitCode == notExist {
		return nil, &fs.PathError{Op: "read", Path: h.String() + ":" + p, Err: fs.ErrNotExist}
	}
	return out, err
}

// WriteFile replaces p atomically on the remote side: a temp file beside
// it, written, chmodded and synced, then renamed over it.
func (h *Host) WriteFile(ctx context.Context, p string, data []byte, mode fs.FileMode) error {
	if err := checkPath(p); err != nil {
		return &fs.PathError{Op: "write", Path: p, Err: err}
	}
	dir, base := path.Dir(p), path.Base(p)
	tmpl := Quote(path.Join(dir, "."+base+".settle-XXXXXX"))
	script := strings.Join([]string{
		"umask 077",
		"t=$(mktemp " + tmpl + ") || exit 1",
		`trap 'rm -f -- "$t"' EXIT`,
		`cat >"$t"`,
		fmt.Sprintf(`chmod %04o "$t"`, mode.Perm()),
		`{ sync -- "$t" 2>/dev/null || sync; }`,
		`mv -f -- "$t" ` + Quote(p),
		"trap - EXIT",
		"sync -- " + Quote(dir) + " 2>/dev/null || :",
	}, " && ")
	_, err := h.runLine(ctx, script, []string{"write", p}, bytes.NewReader(data), false)
	return err
}

func (h *Host) Remove(ctx context.Context, p string) error {
	if err := checkPath(p); err != nil {
		return &fs.PathError{Op: "remove", Path: p, Err: err}
	}
	_, err := h.Run(ctx, reconcilers.Cmd{Argv: []string{"rm", "-f", "--", p}})
	return err
}

// checkPath wants absolute paths: a relative one would silently mean the
// remote user's home directory.
func checkPath(p string) error {
	switch {
	case !path.IsAbs(p):
		return errors.New("a remote path must be absolute")
	case strings.IndexByte(p, 0) >= 0:
		return errors.New("path holds a NUL byte")
	}
	return nil
}

// DialContext opens a connection from the remote host, so PostgreSQL and
// Redis stay bound to its loopback.
func (h *Host) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	for attempt := 0; ; attempt++ {
		c, err := h.conn(ctx)
		if err != nil {
			return nil, err
		}
		ch, err := c.DialContext(ctx, network, addr)
		if err == nil {
			return bridge(ch), nil
		}
		var oce *ssh.OpenChannelError
		if errors.As(err, &oce) || ctx.Err() != nil || attempt > 0 {
			return nil, fmt.Errorf("%s: dial %s %s: %w", h, network, addr, err)
		}
		h.drop(c)
	}
}

// bridge gives an SSH channel deadlines (pgx and go-redis rely on them;
// the channel has none) by relaying it through an in-memory pipe.
func bridge(ch net.Conn) net.Conn {
	near, far := net.Pipe()
	go func() { io.Copy(ch, far); ch.Close() }()
	go func() { io.Copy(far, ch); far.Close() }()
	return &addrConn{Conn: near, local: ch.LocalAddr(), remote: ch.RemoteAddr()}
}

type addrConn struct {
	net.Conn
	local, remote net.Addr
}

func (c *addrConn) LocalAddr() net.Addr  { return c.local }
func (c *addrConn) RemoteAddr() net.Addr { return c.remote }

func redactArgv(argv []string) []string {
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = reconcilers.Redact(a)
	}
	return out
}

// tail keeps the last lines of output, redacted, as reconcilers.Local does.
func tail(out []byte) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	s := strings.Join(lines, " | ")
	if len(s) > 1200 {
		s = "…" + s[len(s)-1200:]
	}
	return reconcilers.Redact(s)
}
