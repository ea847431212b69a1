//go:build e2e

package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"settle/e2e/sandbox"
)

// settleBin is the settle binary built once for all e2e tests.
var settleBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "settle-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	settleBin = filepath.Join(dir, "settle")
	out, err := exec.Command("go", "build", "-o", settleBin, "settle/cmd/settle").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build settle: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// settleRun runs settle with the sandbox's environment and returns its
// exit code, stdout and stderr.
func settleRun(t *testing.T, s *sandbox.Sandbox, args ...string) (int, string, string) {
	t.Helper()
	return settleRunEnv(t, s, nil, args...)
}

// settleRunEnv is settleRun with extra environment, which wins over the
// sandbox's (a webhook URL, an emptied PATH).
func settleRunEnv(t *testing.T, s *sandbox.Sandbox, env []string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, settleBin, args...)
	cmd.Env = append(append(os.Environ(), s.Env()...), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("settle %v: %v", args, err)
	}
	return code, stdout.String(), stderr.String()
}

// mustApply runs settle apply and fails the test unless it converges.
func mustApply(t *testing.T, s *sandbox.Sandbox) {
	t.Helper()
	if code, out, errOut := settleRun(t, s, "apply", "-f", s.DesiredPath); code != 0 {
		t.Fatalf("settle apply exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}

// editDesired rewrites the desired file with re replaced by repl, the way
// `how` says: "rename" (write a temp file, rename over: vim, git), "inplace"
// (truncate and write the same inode), or "sed" (sed -i).
func editDesired(t *testing.T, s *sandbox.Sandbox, how, re, repl string) {
	t.Helper()
	path := s.DesiredPath
	old, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rx := regexp.MustCompile(re)
	if !rx.Match(old) {
		t.Fatalf("editDesired: %q not found in %s", re, path)
	}
	next := rx.ReplaceAll(old, []byte(repl))
	switch how {
	case "rename":
		tmp := path + ".swp"
		if err := os.WriteFile(tmp, next, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	case "inplace":
		if err := os.WriteFile(path, next, 0o644); err != nil {
			t.Fatal(err)
		}
	case "sed":
		sedRe := strings.TrimPrefix(re, "(?m)")
		expr := "s/" + strings.ReplaceAll(sedRe, "/", `\/`) + "/" + strings.ReplaceAll(repl, "/", `\/`) + "/"
		if out, err := exec.Command("sed", "-i", "-E", expr, path).CombinedOutput(); err != nil {
			t.Fatalf("sed: %v: %s", err, out)
		}
	default:
		t.Fatalf("editDesired: unknown way %q", how)
	}
}

func setActive(t *testing.T, s *sandbox.Sandbox, how, color string) {
	t.Helper()
	editDesired(t, s, how, `(?m)^active\s*=\s*"[a-z]+"`, `active = "`+color+`"`)
}

// frontColor is the color nginx serves now, "" when it does not answer 200.
func frontColor(s *sandbox.Sandbox) string {
	code, body := httpGet(s.FrontURL)
	if code != 200 {
		return ""
	}
	var v struct{ Color string }
	json.Unmarshal([]byte(body), &v)
	return v.Color
}

// waitFront waits until nginx serves color, failing the test after d.
func waitFront(t *testing.T, s *sandbox.Sandbox, color string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if frontColor(s) == color {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("nginx does not serve %s after %s (serves %q)", color, d, frontColor(s))
}

// planJSON runs settle plan --format json.
func planJSON(t *testing.T, s *sandbox.Sandbox) (int, map[string]any) {
	t.Helper()
	code, out, errOut := settleRun(t, s, "plan", "-f", s.DesiredPath, "--format", "json")
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("plan --format json: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
	return code, v
}

// agentProc is a settle agent running in the background.
type agentProc struct {
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan struct{}
}

func startAgent(t *testing.T, s *sandbox.Sandbox, args ...string) *agentProc {
	t.Helper()
	return drStartAgent(t, s, nil, args...)
}

func (a *agentProc) stop() {
	select {
	case <-a.done:
		return
	default:
	}
	a.cmd.Process.Signal(os.Interrupt)
	select {
	case <-a.done:
	case <-time.After(20 * time.Second):
		a.cmd.Process.Kill()
		<-a.done
	}
}

// waitLog waits until the agent's log matches re.
func (a *agentProc) waitLog(t *testing.T, re string, d time.Duration) {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if rx.MatchString(a.logs.String()) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("agent log does not match %q after %s:\n%s", re, d, a.logs.String())
}
