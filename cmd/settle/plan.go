package main

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"settle/controller"
)

func runPlan(args []string, stdout, stderr io.Writer) int {
	return planCmd("plan", false, args, stdout, stderr)
}

func runDrift(args []string, stdout, stderr io.Writer) int {
	return planCmd("drift", true, args, stdout, stderr)
}

func planCmd(name string, driftOnly bool, args []string, stdout, stderr io.Writer) int {
	about := `Observes PM2, nginx, PostgreSQL and Redis, and prints what apply would do.
Changes nothing. Each out-of-sync resource is marked "intended" (the file
changed since the last convergence) or "drift" (the machine changed behind
settle's back). Exit 0 in sync, 2 out of sync, 1 error (invalid file, a
system that cannot be read).`
	if driftOnly {
		about = `Like plan, but shows only drift: resources that no longer match the
generation settle last converged to. Exit 0 none, 2 drift found, 1 error.`
	}
	fs := newFlags(name, "[-f FILE] [--format text|json|markdown]", about, stderr)
	file := fileFlag(fs)
	format := fs.String("format", "text", "output `format`: text, json or markdown")
	if done, code := parse(fs, args); done {
		return code
	}
	if *format != "text" && *format != "json" && *format != "markdown" {
		fmt.Fprintf(stderr, "settle %s: unknown --format %q (use text, json or markdown)\n", name, *format)
		return exitUsage
	}
	d, ok := load(*file, stderr)
	if !ok {
		return exitFail
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	host, closeHost, err := hostFor(ctx, d)
	if err != nil {
		fmt.Fprintf(stderr, "settle %s: %v\n", name, err)
		return exitFail
	}
	defer closeHost()
	p := controller.Compute(ctx, host, d)
	controller.Classify(p, appliedWants(d))
	if driftOnly {
		p = p.DriftOnly()
	}
	if err := controller.WritePlan(stdout, p, *format, *format == "text" && isTerminal(stdout)); err != nil {
		fmt.Fprintln(stderr, err)
		return exitFail
	}
	return planExit(p)
}

func planExit(p *controller.Plan) int {
	switch {
	case p.HasErrors():
		return exitFail
	case !p.InSync():
		return exitDrift
	}
	return exitOK
}
