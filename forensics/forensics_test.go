package forensics

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"settle/reconcilers"
)

const canary = "canary-forensics-7f3a9c"

func TestCapture(t *testing.T) {
	reconcilers.AddSecret(canary)
	src := t.TempDir()
	errLog := filepath.Join(src, "app-err.log")
	long := strings.Repeat("boot ok\n", 1000) + "FATAL connect postgres://app:" + canary + "@127.0.0.1/db refused\n"
	if err := os.WriteFile(errLog, []byte(long), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(src, "upstream.conf")
	os.WriteFile(conf, []byte("upstream app { server 127.0.0.1:3001; }\n"), 0o644)

	state := t.TempDir()
	now := time.Date(2026, 12, 3, 16, 15, 0, 0, time.FixedZone("CET", 3600))
	dir, err := Capture(context.Background(), reconcilers.Local{}, Options{
		StateDir: state, Reason: "Rollback to blue / snapshot 2025-10-31!", Now: now,
		Files: []Source{
			{Name: "green-err.log", Path: errLog, TailBytes: 200},
			{Name: "upstream.conf", Path: conf},
			{Name: "nginx-error.log", Path: filepath.Join(src, "nope.log"), TailBytes: 100},
			{Name: "../escape", Path: conf},
		},
		Extra: map[string][]byte{"desired-before.toml": []byte("active = \"green\"\n"), "desired-after.toml": []byte("active = \"blue\"\n")},
	})
	if err != nil {
		t.Fatal(err)
	}
	wantDir := filepath.Join(state, "forensics", "20261203T151500Z-rollback-to-blue-snapshot-2025-10-31")
	if dir != wantDir {
		t.Fatalf("dir %s, want %s", dir, wantDir)
	}
	mode(t, dir, 0o700|os.ModeDir)
	mode(t, filepath.Join(state, "forensics"), 0o700|os.ModeDir)

	idx, err := ReadIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(idx.Files) != 4 {
		t.Fatalf("index lists %d files, want 4: %+v", len(idx.Files), idx.Files)
	}
	for _, f := range idx.Files {
		path := filepath.Join(dir, f.Name)
		mode(t, path, 0o600)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if f.SHA256 != hex.EncodeToString(sum[:]) || f.Size != int64(len(b)) {
			t.Errorf("%s: index says %d bytes sha256 %s; file has %d bytes", f.Name, f.Size, f.SHA256, len(b))
		}
	}
	log, _ := os.ReadFile(filepath.Join(dir, "green-err.log"))
	if strings.Contains(string(log), canary) || !strings.Contains(string(log), "FATAL connect postgres://app:***") {
		t.Errorf("captured log not redacted or not the tail:\n%s", log)
	}
	if len(log) > 200 || !item(idx, "green-err.log").Truncated || item(idx, "upstream.conf").Truncated {
		t.Errorf("tail: %d bytes, truncated flags %+v", len(log), idx.Files)
	}
	if len(idx.Failed) != 2 || idx.Failed[0].Name != "nginx-error.log" || !strings.Contains(idx.Failed[0].Error, "missing") ||
		idx.Failed[1].Name != "../escape" {
		t.Errorf("failures: %+v", idx.Failed)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "INDEX.md"))
	for _, want := range []string{"green-err.log", item(idx, "upstream.conf").SHA256, "Not captured", "nginx-error.log"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("INDEX.md lacks %q:\n%s", want, md)
		}
	}
	mode(t, filepath.Join(dir, "index.json"), 0o600)
	mode(t, filepath.Join(dir, "INDEX.md"), 0o600)

	// Same second, same reason: a second directory, never a merge.
	dir2, err := Capture(context.Background(), reconcilers.Local{}, Options{StateDir: state, Reason: "Rollback to blue / snapshot 2025-10-31!", Now: now})
	if err != nil || dir2 != wantDir+"-2" {
		t.Fatalf("second capture: %s, %v", dir2, err)
	}
}

func TestAddFile(t *testing.T) {
	reconcilers.AddSecret(canary)
	dir, err := Capture(context.Background(), reconcilers.Local{}, Options{StateDir: t.TempDir(), Reason: ""})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(dir, "-capture") {
		t.Errorf("empty reason gave %s", dir)
	}
	dump := []byte("PGDMP\x00\x01" + canary) // binary: kept byte for byte
	if err := AddFile(dir, "replaced.dump", dump); err != nil {
		t.Fatal(err)
	}
	if err := AddFile(dir, "note.txt", []byte("token="+canary)); err != nil {
		t.Fatal(err)
	}
	if err := AddFile(dir, "note.txt", []byte("second note")); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"../x", "index.json", "", ".hidden"} {
		if err := AddFile(dir, bad, nil); err == nil {
			t.Errorf("AddFile accepted name %q", bad)
		}
	}
	idx, _ := ReadIndex(dir)
	if len(idx.Files) != 2 || item(idx, "replaced.dump").Redacted || item(idx, "replaced.dump").Size != int64(len(dump)) {
		t.Fatalf("index after AddFile: %+v", idx.Files)
	}
	mode(t, filepath.Join(dir, "replaced.dump"), 0o600)
	if b, _ := os.ReadFile(filepath.Join(dir, "note.txt")); string(b) != "second note" {
		t.Errorf("note.txt = %q", b)
	}
	if err := AddFile(filepath.Join(dir, "nope"), "x", nil); err == nil {
		t.Error("AddFile into a directory without an index succeeded")
	}
}

func TestCaptureUnwritable(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o600)
	if _, err := Capture(context.Background(), reconcilers.Local{}, Options{StateDir: f}); err == nil {
		t.Fatal("capture under a regular file succeeded")
	}
}

func item(idx *Index, name string) Item {
	for _, f := range idx.Files {
		if f.Name == name {
			return f
		}
	}
	return Item{}
}

func mode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != want {
		t.Errorf("%s: mode %v, want %v", path, fi.Mode(), want)
	}
}

func TestCaptureRedactsLogsThatAreNotUTF8(t *testing.T) {
	const canary = "canary-latin1-7f3a9c"
	reconcilers.AddSecret(canary)
	src := filepath.Join(t.TempDir(), "app.log")
	// A tail that starts mid-character, and a Latin-1 byte later on.
	log := append([]byte{0xa9, 'x', '\n'}, []byte("conexi\xf3n fallida password="+canary+"\n")...)
	if err := os.WriteFile(src, log, 0o600); err != nil {
		t.Fatal(err)
	}
	dir, err := Capture(context.Background(), reconcilers.Local{}, Options{StateDir: t.TempDir(), Reason: "test",
		Files: []Source{{Name: "app.log", Path: src}}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "app.log"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(got, []byte(canary)) {
		t.Fatalf("a log that is not valid UTF-8 was stored unredacted:\n%q", got)
	}
}
