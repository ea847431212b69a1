// Package verify is the post-apply checklist: health, the switch seen
// through nginx, row counts, and the runbook's error-rate and latency
// decision matrix over nginx's access log.
//
// The access log must use settle's format, one request a line:
//
//	log_format settle '$time_iso8601 $status $request_time $upstream_addr "$request"';
//
// for example
//
//	2026-12-03T16:15:00+00:00 200 0.012 127.0.0.1:3000 "GET /api/health HTTP/1.1"
//
// $upstream_addr is "-" when nginx answered itself, and a list
// ("a, b" or "a : b") when it tried several upstreams; the answer came
// from the last one.
package verify

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"settle/reconcilers"
)

// Hit is one request from the access log.
type Hit struct {
	Time     time.Time
	Status   int
	Duration time.Duration
	Upstream string // the address that answered; "" when nginx answered itself
	Request  string
}

// ParseAccessLog returns the hits at or after since (zero: all). Lines
// that do not parse are skipped; ParseAccessLogCount says how many.
func ParseAccessLog(r io.Reader, since time.Time) ([]Hit, error) {
	hits, _, err := ParseAccessLogCount(r, since)
	return hits, err
}

// ParseAccessLogCount is ParseAccessLog that also counts the lines it
// could not parse, so a wrong log_format shows up as "0 hits, 5000 skipped"
// rather than as a quiet site. An unterminated last line is a write in
// progress: used when whole, never counted as skipped.
func ParseAccessLogCount(r io.Reader, since time.Time) (hits []Hit, skipped int, err error) {
	br := bufio.NewReaderSize(r, 64*1024)
	for {
		line, rerr := br.ReadString('\n')
		complete := strings.HasSuffix(line, "\n")
		line = strings.TrimRight(line, "\r\n")
		if line != "" {
			h, ok := parseLine(line)
			switch {
			case ok && (since.IsZero() || !h.Time.Before(since)):
				hits = append(hits, h)
			case !ok && complete:
				skipped++
			}
		}
		if rerr == io.EOF {
			return hits, skipped, nil
		}
		if rerr != nil {
			return hits, skipped, fmt.Errorf("read access log: %w", rerr)
		}
	}
}

func parseLine(line string) (Hit, bool) {
	var h Hit
	f := strings.SplitN(line, " ", 4)
	if len(f) != 4 {
		return h, false
	}
	t, err := time.Parse(time.RFC3339, f[0])
	if err != nil {
		return h, false
	}
	status, err := strconv.Atoi(f[1])
	if err != nil || status < 100 || status > 999 {
		return h, false
	}
	secs, err := strconv.ParseFloat(f[2], 64)
	if err != nil || secs < 0 {
		return h, false
	}
	// nginx escapes '"' inside variables, so the first ` "` opens the
	// request and the line's last byte closes it.
	i := strings.Index(f[3], ` "`)
	if i < 0 || !strings.HasSuffix(f[3], `"`) || len(f[3]) < i+3 {
		return h, false
	}
	up := f[3][:i]
	// Lists are joined by ", " or " : ", so the last word answered.
	if j := strings.LastIndexByte(up, ' '); j >= 0 {
		up = up[j+1:]
	}
	if up == "-" {
		up = ""
	}
	return Hit{Time: t, Status: status, Duration: time.Duration(secs * float64(time.Second)),
		Upstream: up, Request: f[3][i+2 : len(f[3])-1]}, true
}

// DefaultTailBytes is how much of the access log ReadAccessLog reads when
// told nothing: minutes of traffic on a busy site, not the whole history.
const DefaultTailBytes = 8 << 20

// ReadAccessLog reads the last maxBytes of the access log at path on h and
// parses the hits since since. It runs `tail -c` so a large log is not
// copied whole over SSH, and falls back to reading the file when tail is
// missing. The first line of a cut tail is partial and dropped.
func ReadAccessLog(ctx context.Context, h reconcilers.Host, path string, since time.Time, maxBytes int64) ([]Hit, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultTailBytes
	}
	b, err := Tail(ctx, h, path, maxBytes)
	if err != nil {
		return nil, fmt.Errorf("read access log %s: %w", path, err)
	}
	return ParseAccessLog(bytes.NewReader(b), since)
}

// Tail returns at most the last n bytes of path on h, starting at a line
// boundary when the file was longer than n.
func Tail(ctx context.Context, h reconcilers.Host, path string, n int64) ([]byte, error) {
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	b, err := h.Run(tctx, reconcilers.Cmd{Argv: []string{"tail", "-c", strconv.FormatInt(n, 10), "--", path}})
	if err != nil {
		var rerr error
		if b, rerr = h.ReadFile(tctx, path); rerr != nil {
			return nil, rerr
		}
	}
	if int64(len(b)) < n {
		return b, nil
	}
	b = b[int64(len(b))-n:]
	// The file may be exactly n bytes long; losing its first line then is
	// the price of never parsing half a line.
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[i+1:], nil
	}
	return nil, nil
}
