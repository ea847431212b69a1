package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"settle/desired"
	"settle/reconcilers"
	"settle/state"
)

func runStatus(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("status", "[-f FILE] [--format text|json] [--state-dir DIR]", `Prints what the agent (or the last apply) saw and did: phase, the
generation last read and last converged (with commit), each resource's
desired and actual state, the last error, and the next retry. Read from
STATE_DIR/status.json; changes nothing.
Exit 0; 1 when there is no status yet.`, stderr)
	file := fileFlag(fs)
	format := fs.String("format", "text", "`text` or json")
	dir := fs.String("state-dir", "", "read this state `DIR` instead of the desired file's agent.state_dir")
	if done, code := parse(fs, args); done {
		return code
	}
	if *format != "text" && *format != "json" {
		fmt.Fprintf(stderr, "settle status: unknown --format %q (use text or json)\n", *format)
		return exitUsage
	}
	stateDir, ok := stateDirOf(fs, *dir, *file, stderr)
	if !ok {
		return exitFail
	}
	st, err := state.ReadStatus(stateDir)
	if err != nil {
		fmt.Fprintf(stderr, "settle status: no status in %s (%v); has an agent or apply run yet?\n", stateDir, unwrap(err))
		return exitFail
	}
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(st)
		return exitOK
	}
	var b strings.Builder
	alive := "not running"
	if st.PID > 0 && processAlive(st.PID) {
		alive = fmt.Sprintf("pid %d", st.PID)
	}
	fmt.Fprintf(&b, "phase:     %s (updated %s ago; last writer %s)\n", st.Phase, time.Since(st.UpdatedAt).Round(time.Second), alive)
	if st.Mode != "" {
		fmt.Fprintf(&b, "mode:      %s\n", st.Mode)
	}
	fmt.Fprintf(&b, "file:      %s\n", st.File)
	fmt.Fprintf(&b, "seen:      %s\n", genLine(st.Seen))
	fmt.Fprintf(&b, "applied:   %s\n", genLine(st.Applied))
	if st.Message != "" {
		fmt.Fprintf(&b, "message:   %s\n", st.Message)
	}
	if st.LastError != "" {
		fmt.Fprintf(&b, "error:     %s\n", strings.ReplaceAll(st.LastError, "\n", "\n           "))
	}
	if !st.NextRetry.IsZero() {
		if wait := time.Until(st.NextRetry); wait > 0 {
			fmt.Fprintf(&b, "retry in:  %s\n", wait.Round(time.Second))
		} else {
			b.WriteString("retry:     due now\n")
		}
	}
	b.WriteString("\n")
	for _, r := range st.Resources {
		fmt.Fprintf(&b, "%-8s %-28s %-8s %s\n", r.Kind, r.Name, r.Status, r.Actual)
		if r.Status != "in_sync" {
			fmt.Fprintf(&b, "         %-28s desired: %s\n", "", r.Desired)
		}
		if r.Reason != "" {
			fmt.Fprintf(&b, "         %-28s reason:  %s\n", "", r.Reason)
		}
	}
	if len(st.Verification) > 0 {
		b.WriteString("\nverification after the last apply:\n")
		for _, c := range st.Verification {
			mark := "ok  "
			if !c.OK {
				mark = "FAIL"
			}
			fmt.Fprintf(&b, "  %s %s: %s\n", mark, c.Name, c.Detail)
		}
	}
	io.WriteString(stdout, reconcilers.Redact(b.String()))
	return exitOK
}

func genLine(g state.Gen) string {
	if g.Generation == "" {
		return "none"
	}
	commit := desired.GitInfo{Commit: g.Commit, Dirty: g.Dirty}.Short()
	s := fmt.Sprintf("generation %s, commit %s, active %s", g.Generation[:min(12, len(g.Generation))], commit, g.Active)
	if g.Snapshot != "" {
		s += ", snapshot " + g.Snapshot
	}
	if !g.At.IsZero() {
		s += ", at " + g.At.Format(time.RFC3339)
	}
	return s
}

// stateDirOf is --state-dir, or the desired file's agent.state_dir. The
// file may be invalid right now; status must still work, so a loose read
// of just that key is the fallback.
func stateDirOf(fs *flag.FlagSet, dir, file string, stderr io.Writer) (string, bool) {
	d, err := desired.Load(file)
	if err == nil {
		registerSecrets(d) // so what is printed masks them too
	}
	if dir != "" {
		return dir, true
	}
	if err == nil {
		return d.Agent.StateDir, true
	}
	if sd := looseStateDir(file); sd != "" {
		fmt.Fprintf(stderr, "settle %s: %s does not validate; reading state from %s (pass --state-dir DIR to choose)\n", fs.Name(), file, sd)
		return sd, true
	}
	fmt.Fprintf(stderr, "settle %s: cannot tell the state dir: %v\n(pass --state-dir DIR)\n", fs.Name(), err)
	return "", false
}

func processAlive(pid int) bool {
	p, err := os.FindProcess(pid)
	return err == nil && p.Signal(syscallZero) == nil
}

func unwrap(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
