package main

import (
	"fmt"
	"io"
)

func notYet(name string) func([]string, io.Writer, io.Writer) int {
	return func(_ []string, _, stderr io.Writer) int {
		fmt.Fprintf(stderr, "settle %s: not built yet\n", name)
		return exitFail
	}
}

var ()
