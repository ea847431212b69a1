package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"settle/desired"
	"settle/reconcilers"
	"settle/report"
)

func runHistory(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("history", "[-f FILE] [--format text|json] [--state-dir DIR]",
		`Lists every apply in the journal, oldest first, newest last: when, which
generation and commit (dirty when the checkout had uncommitted changes), the
active color and snapshot it drove to, how it ended and how long it took.
Exit 0 listed, 1 journal unreadable, 2 usage error.`, stderr)
	file := fileFlag(fs)
	format := fs.String("format", "text", "output `format`: text or json")
	stateDir := fs.String("state-dir", "", "read the journal in `DIR` instead of the desired file's state_dir")
	if done, code := parse(fs, args); done {
		return code
	}
	if fs.NArg() > 0 || (*format != "text" && *format != "json") {
		fmt.Fprintf(stderr, "settle history: want [-f FILE] [--format text|json], got %q and format %q\n", fs.Args(), *format)
		return exitUsage
	}
	entries, code := readJournal("history", fs, *file, *stateDir, stderr)
	if code != exitOK {
		return code
	}
	h := report.History(entries)
	if *format == "json" {
		b, err := json.MarshalIndent(h, "", "  ")
		if err != nil {
			fmt.Fprintf(stderr, "settle history: %v\n", err)
			return exitFail
		}
		fmt.Fprintln(stdout, reconcilers.Redact(string(b)))
		return exitOK
	}
	if len(h) == 0 {
		fmt.Fprintln(stdout, "no apply in the journal yet")
		return exitOK
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tGENERATION\tCOMMIT\tACTIVE\tSNAPSHOT\tOUTCOME\tDURATION\tERROR")
	for _, g := range h {
		commit := desired.GitInfo{Commit: g.Commit, Dirty: g.Dirty}.Short()
		gen := g.Generation
		if len(gen) > 12 {
			gen = gen[:12]
		}
		took := time.Duration(g.DurationMS * float64(time.Millisecond)).Round(time.Millisecond)
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s", g.Time.UTC().Format(time.RFC3339), gen, commit,
			dash(g.Active), dash(g.Snapshot), g.Outcome, took, firstLine(g.Error))
		fmt.Fprintln(tw, reconcilers.Redact(line))
	}
	tw.Flush()
	return exitOK
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func firstLine(s string) string {
	for i, r := range s {
		if r == '\n' {
			return s[:i] + " …"
		}
	}
	return s
}
