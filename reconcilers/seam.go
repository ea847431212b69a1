package reconcilers

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"strings"
)

// Host is the seam between reconcilers and the machine they manage. Every
// program they run, file they touch and connection they open goes through
// it, so the same reconciler works locally and over SSH.
type Host interface {
	// Run executes argv (never a shell string) and returns its stdout.
	// A non-zero exit is a *CmdError carrying argv, code and a redacted tail.
	Run(ctx context.Context, c Cmd) ([]byte, error)
	ReadFile(ctx context.Context, path string) ([]byte, error)
	// WriteFile replaces path atomically: temp file in the same directory,
	// fsync, chmod, rename. Readers see the old bytes or the new, never half.
	WriteFile(ctx context.Context, path string, data []byte, mode fs.FileMode) error
	// Remove deletes path; a missing file is not an error.
	Remove(ctx context.Context, path string) error
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
	String() string // "local" or "ssh user@host:port", for messages
}

// Cmd is one program invocation.
type Cmd struct {
	Argv  []string
	Dir   string
	Env   []string // added to the host's environment
	Stdin []byte
	// SecretStdout keeps stdout out of error tails: `pm2 jlist` prints
	// every app's environment.
	SecretStdout bool
}

func (c Cmd) String() string { return strings.Join(c.Argv, " ") }

// CmdError is a failed command: what ran, how it ended, and the last lines
// of what it printed with secrets removed.
type CmdError struct {
	Argv     []string
	ExitCode int // -1 when it did not exit (killed, timed out, not found)
	Tail     string
	Err      error
}

func (e *CmdError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s", strings.Join(e.Argv, " "))
	if e.ExitCode >= 0 {
		fmt.Fprintf(&b, ": exit status %d", e.ExitCode)
	} else if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if e.Tail != "" {
		fmt.Fprintf(&b, ": %s", e.Tail)
	}
	return b.String()
}

func (e *CmdError) Unwrap() error { return e.Err }

// ErrNotExist is returned (wrapped) by ReadFile for a missing file on any host.
var ErrNotExist = fs.ErrNotExist

// IsNotExist reports whether err means a missing file.
func IsNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// tailLines keeps the last n lines and at most max bytes of out.
func tailLines(out []byte, n, max int) string {
	s := strings.TrimRight(string(out), "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	s = strings.Join(lines, " | ")
	if len(s) > max {
		s = "…" + s[len(s)-max:]
	}
	return s
}
