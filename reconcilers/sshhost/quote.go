package sshhost

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"settle/reconcilers"
)

// Quote makes arg one word for a POSIX shell, whatever it holds: inside
// single quotes nothing is special except the quote itself, which is
// closed, escaped and reopened. The remote side of SSH only takes a string,
// so this function is all that stands between a value and the remote shell.
func Quote(arg string) string {
	return "'" + strings.ReplaceAll(arg, "'", `'\''`) + "'"
}

var envKeyRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Command builds the remote command line for c: every word quoted, Dir as
// `cd -- DIR &&`, Env through `env --`, and `exec` so the remote shell does
// not linger between sshd and the program (nor hold the line in its argv).
func Command(c reconcilers.Cmd) (string, error) {
	if len(c.Argv) == 0 {
		return "", errors.New("empty argv")
	}
	// env would read a leading NAME=VALUE word as an assignment, and dash's
	// exec has no `--`: a program name shaped like either is refused.
	if p := c.Argv[0]; p == "" || strings.HasPrefix(p, "-") || strings.Contains(p, "=") {
		return "", fmt.Errorf("program name %q cannot be run safely", reconcilers.Redact(p))
	}
	words := append([]string{c.Dir}, c.Argv...)
	for i, kv := range c.Env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || !envKeyRe.MatchString(k) {
			// The entry may be a password: say where it is, not what.
			return "", fmt.Errorf("environment entry %d is not NAME=VALUE with a plain name", i+1)
		}
		words = append(words, kv)
	}
	for _, w := range words {
		if strings.IndexByte(w, 0) >= 0 {
			return "", errors.New("an argument, dir or environment value holds a NUL byte; no remote command can carry it")
		}
	}
	var b strings.Builder
	if c.Dir != "" {
		b.WriteString("cd -- " + Quote(c.Dir) + " && ")
	}
	b.WriteString("exec")
	if len(c.Env) > 0 {
		b.WriteString(" env --")
		for _, kv := range c.Env {
			b.WriteString(" " + Quote(kv))
		}
	}
	for _, a := range c.Argv {
		b.WriteString(" " + Quote(a))
	}
	return b.String(), nil
}
