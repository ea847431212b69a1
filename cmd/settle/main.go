// Command settle drives a blue-green app under PM2 behind nginx, with
// PostgreSQL and Redis, to the state a desired.toml file describes.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

// Exit codes shared by every command.
const (
	exitOK    = 0
	exitFail  = 1 // invalid file, failed apply, runtime error
	exitUsage = 2 // bad command line; for plan/drift: drift found
	exitDrift = 2
)

type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"validate", "check a desired file; exit 0 valid, 1 invalid", runValidate},
		{"plan", "show what apply would change; exit 0 in sync, 2 drift, 1 error", runPlan},
		{"drift", "like plan, but only what changed behind settle's back", runDrift},
		{"apply", "converge the machine once; exit 0 converged, 1 failed", runApply},
		{"agent", "watch the file and keep the machine converged", runAgent},
		{"status", "what the agent last saw and did", runStatus},
		{"history", "applied generations with commit, time and outcome", runHistory},
		{"snapshot", "create, list, verify or stage PostgreSQL snapshots", runSnapshot},
		{"report", "incident report from the journal", runReport},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "settle: unknown command %q\n\n", args[0])
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprint(w, `settle converges a VPS to the state its desired.toml describes:
which app color (blue or green) serves traffic under PM2 behind nginx,
which PostgreSQL snapshot is live, and the Redis cache that goes with it.
A rollback is an edit of that file.

Usage: settle <command> [flags]

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Every command takes -f FILE (default: $SETTLE_DESIRED, else desired.toml).
Run "settle <command> --help" for its flags.
`)
}

// newFlags builds a flag set whose --help says what the command does and
// whose errors exit with exitUsage.
func newFlags(name, synopsis, about string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: settle %s %s\n\n%s\n\nFlags:\n", name, synopsis, about)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags returns (done, code): done when --help was asked or flags
// were bad. Positional arguments are left in fs.Args().
func parseFlags(fs *flag.FlagSet, args []string) (bool, int) {
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return true, exitOK
	}
	if err != nil {
		return true, exitUsage
	}
	return false, 0
}

// parse is parseFlags for commands that take no positional argument.
func parse(fs *flag.FlagSet, args []string) (bool, int) {
	if done, code := parseFlags(fs, args); done {
		return done, code
	}
	if fs.NArg() > 0 {
		// `settle apply other.toml` must not quietly apply desired.toml.
		fmt.Fprintf(fs.Output(), "settle %s: unexpected argument %q; the desired file is given with -f FILE\n", fs.Name(), fs.Arg(0))
		return true, exitUsage
	}
	return false, 0
}

func defaultDesired() string {
	if v := os.Getenv("SETTLE_DESIRED"); v != "" {
		return v
	}
	return "desired.toml"
}

func fileFlag(fs *flag.FlagSet) *string {
	return fs.String("f", defaultDesired(), "desired-state `FILE`")
}
