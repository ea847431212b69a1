package main

import (
	"fmt"
	"io"

	"settle/desired"
)

func runValidate(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("validate", "[-f FILE]", `Checks the desired file without touching the machine: syntax, unknown keys
(with the nearest valid name), types, and every value that will reach a
command, a file or SQL. Every problem is printed as FILE:LINE: message.
Exit 0 valid, 1 invalid, 2 usage error.`, stderr)
	file := fileFlag(fs)
	if done, code := parse(fs, args); done {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "settle validate: unexpected argument %q (use -f FILE)\n", fs.Arg(0))
		return exitUsage
	}
	d, err := desired.Load(*file)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFail
	}
	fmt.Fprintln(stdout, summary(d))
	return exitOK
}

// summary is the one-line description of a valid desired state.
func summary(d *desired.Desired) string {
	snap := "none"
	if d.Postgres != nil {
		snap = d.Postgres.Snapshot
	}
	return fmt.Sprintf("%s: valid: app %s, active %s (standby %s), snapshot %s, generation %s, commit %s",
		d.Path, d.App.Name, d.App.Active, d.App.Standby, snap, d.Generation[:12], d.Git.Short())
}
