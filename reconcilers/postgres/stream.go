package postgres

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"time"

	"settle/reconcilers"
)

// Streamer is what a Host may offer besides Run: a program whose stdin and
// stdout are streams, so a plain dump of any size flows from gzip through
// settle into psql without being held in memory. reconcilers.Local gets
// one here; an SSH host must implement it to restore plain dumps that need
// decompressing or filtering.
type Streamer interface {
	Stream(ctx context.Context, c reconcilers.Cmd, stdin io.Reader, stdout io.Writer) error
}

func streamerFor(h reconcilers.Host) Streamer {
	switch h := h.(type) {
	case Streamer:
		return h
	case reconcilers.Local, *reconcilers.Local:
		return localStreamer{}
	}
	return nil
}

type localStreamer struct{}

func (localStreamer) Stream(ctx context.Context, c reconcilers.Cmd, stdin io.Reader, stdout io.Writer) error {
	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	cmd.Dir, cmd.Stdin, cmd.Stdout = c.Dir, stdin, stdout
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.WaitDelay = 2 * time.Second
	var stderr tailBuffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err == nil {
		return nil
	}
	ce := &reconcilers.CmdError{Argv: c.Argv, ExitCode: -1, Err: err, Tail: reconcilers.Redact(stderr.String())}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.Exited() {
		ce.ExitCode = ee.ExitCode()
	}
	if ctx.Err() != nil {
		ce.Err = ctx.Err()
	}
	return ce
}

// tailBuffer keeps the last 4 KiB written, enough for psql's error.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = append(t.b[:0], t.b[len(t.b)-4096:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	lines := strings.Split(strings.TrimSpace(string(t.b)), "\n")
	if len(lines) > 6 {
		lines = lines[len(lines)-6:]
	}
	return strings.Join(lines, " | ")
}

// pipe runs src | filter | dst on the host. When dst fails, src is stopped
// and dst's error is the one returned: psql's message says what broke.
func pipe(ctx context.Context, s Streamer, src, dst reconcilers.Cmd, filter func(io.Reader) io.Reader) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	srcErr := make(chan error, 1)
	go func() {
		err := s.Stream(ctx, src, nil, pw)
		pw.CloseWithError(err)
		srcErr <- err
	}()
	var in io.Reader = pr
	if filter != nil {
		in = filter(pr)
	}
	err := s.Stream(ctx, dst, in, io.Discard)
	pr.CloseWithError(io.ErrClosedPipe)
	if c, ok := in.(io.Closer); ok {
		c.Close() // unblocks a filter still writing
	}
	if err != nil {
		cancel()
		<-srcErr
		return err
	}
	if err := <-srcErr; err != nil {
		return fmt.Errorf("read dump: %w", err)
	}
	return nil
}

var ownerLineRe = regexp.MustCompile(`^ALTER [A-Z ]+ .* OWNER TO .*;\r?\n?$`)

// dropOwners is no_owner for plain dumps: it removes "ALTER ... OWNER TO"
// statements, which psql cannot skip the way pg_restore --no-owner does.
// Lines inside COPY data are passed through untouched, whatever they say.
func dropOwners(r io.Reader) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		br := bufio.NewReaderSize(r, 1<<20)
		bw := bufio.NewWriterSize(pw, 1<<20)
		inCopy := false
		var err error
		for err == nil {
			var line []byte
			line, err = br.ReadBytes('\n')
			if len(line) == 0 {
				continue
			}
			switch {
			case inCopy:
				inCopy = !bytes.Equal(bytes.TrimRight(line, "\r\n"), []byte(`\.`))
			case bytes.HasPrefix(line, []byte("COPY ")) && bytes.HasSuffix(bytes.TrimRight(line, "\r\n"), []byte("FROM stdin;")):
				inCopy = true
			case ownerLineRe.Match(line):
				continue
			}
			if _, werr := bw.Write(line); werr != nil {
				pw.CloseWithError(werr)
				return
			}
		}
		if err == io.EOF {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
	}()
	return pr
}
