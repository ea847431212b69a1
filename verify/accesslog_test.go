package verify

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"settle/reconcilers"
)

var t0 = time.Date(2026, 12, 3, 16, 15, 0, 0, time.UTC)

func TestParseAccessLog(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		since   time.Time
		want    []Hit
		skipped int
	}{
		{
			name: "good lines",
			in: "2026-12-03T16:15:00+00:00 200 0.012 127.0.0.1:3000 \"GET /api/health HTTP/1.1\"\n" +
				"2026-12-03T17:15:01+01:00 502 5.250 127.0.0.1:3001 \"POST /login HTTP/1.1\"\n",
			want: []Hit{
				{Time: t0, Status: 200, Duration: 12 * time.Millisecond, Upstream: "127.0.0.1:3000", Request: "GET /api/health HTTP/1.1"},
				{Time: t0.Add(time.Second), Status: 502, Duration: 5250 * time.Millisecond, Upstream: "127.0.0.1:3001", Request: "POST /login HTTP/1.1"},
			},
		},
		{
			name: "no upstream and several upstreams",
			in: "2026-12-03T16:15:00Z 404 0.000 - \"GET /x HTTP/1.1\"\n" +
				"2026-12-03T16:15:00Z 200 0.100 127.0.0.1:3000, 127.0.0.1:3001 \"GET /y HTTP/1.1\"\n" +
				"2026-12-03T16:15:00Z 200 0.100 127.0.0.1:3000 : 127.0.0.1:3001 \"GET /z HTTP/1.1\"\n",
			want: []Hit{
				{Time: t0, Status: 404, Request: "GET /x HTTP/1.1"},
				{Time: t0, Status: 200, Duration: 100 * time.Millisecond, Upstream: "127.0.0.1:3001", Request: "GET /y HTTP/1.1"},
				{Time: t0, Status: 200, Duration: 100 * time.Millisecond, Upstream: "127.0.0.1:3001", Request: "GET /z HTTP/1.1"},
			},
		},
		{
			name: "garbage counted, not fatal",
			in: "127.0.0.1 - - [03/Dec/2026:16:15:00 +0000] \"GET / HTTP/1.1\" 200 612\n" +
				"2026-12-03T16:15:00Z abc 0.1 - \"GET / HTTP/1.1\"\n" +
				"2026-12-03T16:15:00Z 200 fast - \"GET / HTTP/1.1\"\n" +
				"2026-12-03T16:15:00Z 200 0.1 - GET / HTTP/1.1\n" +
				"yesterday 200 0.1 - \"GET /\"\n" +
				"\n" +
				"2026-12-03T16:15:00Z 200 0.001 - \"GET /ok HTTP/1.1\"\n",
			want:    []Hit{{Time: t0, Status: 200, Duration: time.Millisecond, Request: "GET /ok HTTP/1.1"}},
			skipped: 5,
		},
		{
			name: "partial last line ignored, not counted",
			in: "2026-12-03T16:15:00Z 200 0.001 - \"GET /ok HTTP/1.1\"\n" +
				"2026-12-03T16:15:01Z 200 0.001 127.0.0.1:30",
			want: []Hit{{Time: t0, Status: 200, Duration: time.Millisecond, Request: "GET /ok HTTP/1.1"}},
		},
		{
			name: "whole unterminated last line used",
			in:   "2026-12-03T16:15:00Z 200 0.001 - \"GET /ok HTTP/1.1\"",
			want: []Hit{{Time: t0, Status: 200, Duration: time.Millisecond, Request: "GET /ok HTTP/1.1"}},
		},
		{
			name: "since is inclusive",
			in: "2026-12-03T16:14:59Z 200 0.001 - \"GET /before HTTP/1.1\"\n" +
				"2026-12-03T16:15:00Z 200 0.001 - \"GET /at HTTP/1.1\"\n" +
				"2026-12-03T16:15:01Z 200 0.001 - \"GET /after HTTP/1.1\"\n",
			since: t0,
			want: []Hit{
				{Time: t0, Status: 200, Duration: time.Millisecond, Request: "GET /at HTTP/1.1"},
				{Time: t0.Add(time.Second), Status: 200, Duration: time.Millisecond, Request: "GET /after HTTP/1.1"},
			},
		},
		{name: "empty", in: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, skipped, err := ParseAccessLogCount(strings.NewReader(tt.in), tt.since)
			if err != nil {
				t.Fatal(err)
			}
			if skipped != tt.skipped {
				t.Errorf("skipped %d lines, want %d", skipped, tt.skipped)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d hits %+v, want %d", len(got), got, len(tt.want))
			}
			for i := range got {
				if !got[i].Time.Equal(tt.want[i].Time) {
					t.Errorf("hit %d time %s, want %s", i, got[i].Time, tt.want[i].Time)
				}
				got[i].Time = tt.want[i].Time
				if got[i] != tt.want[i] {
					t.Errorf("hit %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestReadAccessLogTail(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	var b strings.Builder
	for i := range 100 {
		b.WriteString(t0.Add(time.Duration(i)*time.Second).Format(time.RFC3339) + " 200 0.001 - \"GET /n HTTP/1.1\"\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	line := int64(len(strings.SplitAfter(b.String(), "\n")[0]))
	// A tail of 10.5 lines must yield the 10 whole ones, never half of one.
	hits, err := ReadAccessLog(context.Background(), reconcilers.Local{}, path, time.Time{}, 10*line+line/2)
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) != 10 || !hits[0].Time.Equal(t0.Add(90*time.Second)) {
		t.Fatalf("got %d hits from %v, want 10 from %s", len(hits), hits, t0.Add(90*time.Second))
	}
	hits, err = ReadAccessLog(context.Background(), reconcilers.Local{}, path, t0.Add(95*time.Second), 0)
	if err != nil || len(hits) != 5 {
		t.Fatalf("since: got %d hits, %v; want 5", len(hits), err)
	}
	if _, err := ReadAccessLog(context.Background(), reconcilers.Local{}, filepath.Join(dir, "nope"), time.Time{}, 0); !reconcilers.IsNotExist(err) {
		t.Fatalf("missing log: err %v, want not-exist", err)
	}
}

// noTail is a host without a working tail, as on a minimal image.
type noTail struct{ reconcilers.Local }

func (noTail) Run(context.Context, reconcilers.Cmd) ([]byte, error) {
	return nil, &reconcilers.CmdError{Argv: []string{"tail"}, ExitCode: 127}
}

func TestTailFallsBackToReadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	os.WriteFile(path, []byte("one\ntwo\nthree\n"), 0o600)
	got, err := Tail(context.Background(), noTail{}, path, 8)
	if err != nil || string(got) != "three\n" {
		t.Fatalf("Tail = %q, %v; want \"three\\n\"", got, err)
	}
	got, err = Tail(context.Background(), noTail{}, path, 100)
	if err != nil || string(got) != "one\ntwo\nthree\n" {
		t.Fatalf("Tail = %q, %v; want the whole file", got, err)
	}
}
