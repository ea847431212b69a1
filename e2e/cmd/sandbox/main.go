// Command sandbox brings the settle e2e sandbox (nginx, PM2, PostgreSQL 15,
// Redis, two demo-app releases) up or down in a directory:
//
//	go run ./e2e/cmd/sandbox up --dir DIR     then: . DIR/sandbox.env
//	go run ./e2e/cmd/sandbox down --dir DIR
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"settle/e2e/sandbox"
)

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "up" && os.Args[1] != "down") {
		usage()
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	dir := fs.String("dir", "", "sandbox directory (created by up; must be traversable by user postgres)")
	timeout := fs.Duration("timeout", 90*time.Second, "deadline for up")
	fs.Parse(os.Args[2:])
	if *dir == "" || fs.NArg() > 0 {
		usage()
	}
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	start := time.Now()
	switch os.Args[1] {
	case "up":
		ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer cancel()
		ctx, cancel2 := context.WithTimeout(ctx, *timeout)
		defer cancel2()
		s, err := sandbox.Up(ctx, *dir, logf)
		if err != nil {
			fmt.Fprintln(os.Stderr, "sandbox up:", err)
			os.Exit(1)
		}
		fmt.Printf("sandbox up in %s\n  front: %s\n  env:   . %s\n  down:  go run ./e2e/cmd/sandbox down --dir %s\n",
			time.Since(start).Round(time.Millisecond), s.FrontURL, s.EnvPath, s.Dir)
	case "down":
		if err := sandbox.Down(*dir); err != nil {
			fmt.Fprintln(os.Stderr, "sandbox down:", err)
			os.Exit(1)
		}
		fmt.Printf("sandbox down in %s\n", time.Since(start).Round(time.Millisecond))
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: sandbox up|down --dir DIR")
	os.Exit(2)
}
