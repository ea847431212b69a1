package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"settle/report"
	"settle/state"
)

func runReport(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("report", "[-f FILE] [--since DURATION] [--format markdown|json] [--state-dir DIR]",
		`Writes the incident report of what settle did, from its journal: a timeline,
what changed (colors, snapshots, generations and commits), every action with
its duration, a data-loss statement for each database swap (which writes left
the live database and where they are kept), the forensics captured, the
verification results, and blanks for the on-call engineer marked _(fill in)_.
The journal is in the desired file's [agent] state_dir, or in --state-dir.
Exit 0 written, 1 journal unreadable, 2 usage error.`, stderr)
	file := fileFlag(fs)
	since := fs.String("since", "24h", "report the last `DURATION` (Go syntax, or days: 7d)")
	format := fs.String("format", "markdown", "output `format`: markdown or json")
	stateDir := fs.String("state-dir", "", "read the journal in `DIR` instead of the desired file's state_dir")
	if done, code := parse(fs, args); done {
		return code
	}
	window, err := parseSince(*since)
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err == nil && *format != "markdown" && *format != "json" {
		err = fmt.Errorf("--format %q: want markdown or json", *format)
	}
	if err != nil {
		fmt.Fprintf(stderr, "settle report: %v\n", err)
		return exitUsage
	}
	entries, code := readJournal("report", fs, *file, *stateDir, stderr)
	if code != exitOK {
		return code
	}
	now := time.Now().UTC()
	r := report.Build(entries, now.Add(-window), now)
	if *format == "json" {
		err = r.JSON(stdout)
	} else {
		err = r.Markdown(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "settle report: %v\n", err)
		return exitFail
	}
	return exitOK
}

// readJournal finds the state dir (flag, else the desired file) and reads
// its journal. The desired file is loaded whenever it can be, even with
// --state-dir, so the secrets it names are masked in what is printed.
func readJournal(cmd string, fs *flag.FlagSet, file, stateDir string, stderr io.Writer) ([]state.Entry, int) {
	// The desired file may be broken right now, mid-incident: the journal
	// is still read (its entries were redacted when written).
	sd, ok := stateDirOf(fs, stateDir, file, stderr)
	if !ok {
		return nil, exitFail
	}
	stateDir = sd
	path := filepath.Join(stateDir, "journal.jsonl")
	if _, err := os.Stat(path); err != nil {
		fmt.Fprintf(stderr, "settle %s: no journal: %v\n", cmd, err)
		return nil, exitFail
	}
	entries, err := state.ReadJournal(stateDir)
	if err != nil {
		fmt.Fprintf(stderr, "settle %s: %v\n", cmd, err)
		return nil, exitFail
	}
	return entries, exitOK
}

// parseSince accepts Go durations and whole days ("7d"): incidents are
// looked back on in days.
func parseSince(s string) (time.Duration, error) {
	var d time.Duration
	var err error
	if n, ok := strings.CutSuffix(s, "d"); ok {
		var days int
		days, err = strconv.Atoi(n)
		d = time.Duration(days) * 24 * time.Hour
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("--since %q: want a positive duration such as 2h or 7d", s)
	}
	return d, nil
}
