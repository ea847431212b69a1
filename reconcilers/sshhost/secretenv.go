package sshhost

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"

	"settle/reconcilers"
)

// secretKeyRe names environment entries that must not ride on the remote
// command line, where ps and /proc/*/cmdline show them to every user of the
// VPS for as long as the shell lives.
var secretKeyRe = regexp.MustCompile(`(?i)(PASS|SECRET|TOKEN|KEY)`)

// stashSecrets moves c's secret environment entries into a 0600 file on the
// remote host, written through stdin (never argv), and returns c without
// them plus the shell prefix that loads and deletes the file before the
// program runs.
func (h *Host) stashSecrets(ctx context.Context, c reconcilers.Cmd) (reconcilers.Cmd, string, error) {
	var keep []string
	var file bytes.Buffer
	for _, kv := range c.Env {
		k, v, _ := strings.Cut(kv, "=")
		if !secretKeyRe.MatchString(k) || !envKeyRe.MatchString(k) {
			keep = append(keep, kv)
			continue
		}
		if strings.IndexByte(v, 0) >= 0 || strings.ContainsAny(v, "\n\r") {
			return c, "", fmt.Errorf("environment entry %s holds a NUL byte or a line break", k)
		}
		fmt.Fprintf(&file, "export %s=%s\n", k, Quote(v))
	}
	if file.Len() == 0 {
		return c, "", nil
	}
	out, err := h.runLine(ctx, `umask 077 && f=$(mktemp) && cat > "$f" && printf '%s' "$f"`,
		[]string{"mktemp", "(secret environment)"}, &file, false)
	path := strings.TrimSpace(string(out))
	if err != nil || !strings.HasPrefix(path, "/") || strings.ContainsAny(path, "'\n") {
		return c, "", fmt.Errorf("stash secret environment on the remote host: %v", err)
	}
	c.Env = keep
	q := Quote(path)
	return c, ". " + q + "; rm -f -- " + q + "; ", nil
}
