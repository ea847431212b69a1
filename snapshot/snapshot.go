// Package snapshot reads, writes and checks PostgreSQL snapshot files: dumps in snapshot_dir named by their ID, with an optional JSON manifest.
package snapshot

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"settle/desired"
	"settle/reconcilers"
)

// Format is how a snapshot file was written.
type Format string

const (
	Custom Format = "custom" // pg_dump -Fc: ID.dump, restored by pg_restore
	SQLGz  Format = "sql.gz" // plain pg_dump | gzip: ID.sql.gz, streamed into psql
	SQL    Format = "sql"    // plain pg_dump: ID.sql, run by psql
)

// extensions in the order ambiguity is reported; the suffix is what follows ID.
var extensions = []struct {
	ext    string
	format Format
}{{".dump", Custom}, {".sql.gz", SQLGz}, {".sql", SQL}}

// File is one snapshot in snapshot_dir.
type File struct {
	ID       string    `json:"id"`
	Path     string    `json:"path"`
	Format   Format    `json:"format"`
	Size     int64     `json:"size"`
	ModTime  time.Time `json:"mod_time"`
	Manifest *Manifest `json:"manifest,omitempty"`
}

// ErrNotFound is wrapped when a snapshot ID has no file.
var ErrNotFound = errors.New("snapshot not found")

// ValidID reports whether id is safe to use as a file name and in SQL
// comments; the same rule desired.toml's postgres.snapshot follows.
func ValidID(id string) bool {
	return desired.SnapshotRe.MatchString(id) && !strings.Contains(id, "..")
}

// ManifestPath is where the manifest of snapshot id lives.
func ManifestPath(dir, id string) string { return filepath.Join(dir, id+".json") }

// DumpPath is where settle writes a new custom-format snapshot.
func DumpPath(dir, id string) string { return filepath.Join(dir, id+".dump") }

// List returns every snapshot in dir, newest first, each with its manifest
// when one is present. A manifest that does not parse is an error: it is
// settle's own file and a bad one means something went wrong.
func List(ctx context.Context, h reconcilers.Host, dir string) ([]File, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	// find prints name, size and mtime without following symlinked dirs;
	// names with a tab or newline cannot be snapshot IDs and are skipped.
	out, err := h.Run(ctx, reconcilers.Cmd{Argv: []string{"find", dir, "-mindepth", "1", "-maxdepth", "1",
		"-type", "f", "-printf", `%f\t%s\t%T@\n`}})
	if err != nil {
		return nil, fmt.Errorf("list snapshots in %s: %w", dir, err)
	}
	byID := map[string][]File{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 3 {
			continue
		}
		id, format := splitName(f[0])
		if format == "" || !ValidID(id) {
			continue
		}
		size, _ := strconv.ParseInt(f[1], 10, 64)
		secs, _ := strconv.ParseFloat(f[2], 64)
		byID[id] = append(byID[id], File{ID: id, Path: filepath.Join(dir, f[0]), Format: format, Size: size,
			ModTime: time.Unix(0, int64(secs*1e9)).UTC()})
	}
	var files []File
	for id, fs := range byID {
		if len(fs) > 1 {
			return nil, ambiguous(id, fs)
		}
		f := fs[0]
		m, err := ReadManifest(ctx, h, dir, id)
		if err != nil && !reconcilers.IsNotExist(err) {
			return nil, err
		}
		f.Manifest = m
		files = append(files, f)
	}
	sort.Slice(files, func(i, j int) bool {
		if !files[i].ModTime.Equal(files[j].ModTime) {
			return files[i].ModTime.After(files[j].ModTime)
		}
		return files[i].ID < files[j].ID
	})
	return files, nil
}

// Find returns snapshot id from dir, or an error wrapping ErrNotFound that
// names the files it looked for.
func Find(ctx context.Context, h reconcilers.Host, dir, id string) (File, error) {
	if !ValidID(id) {
		return File{}, fmt.Errorf("snapshot ID %q: use letters, digits, '.', '-' and '_', no path", id)
	}
	files, err := List(ctx, h, dir)
	if err != nil {
		return File{}, err
	}
	for _, f := range files {
		if f.ID == id {
			return f, nil
		}
	}
	return File{}, fmt.Errorf("%w: no %s.dump, %s.sql.gz or %s.sql in %s", ErrNotFound, id, id, id, dir)
}

func splitName(name string) (string, Format) {
	for _, e := range extensions {
		if id, ok := strings.CutSuffix(name, e.ext); ok && id != "" {
			return id, e.format
		}
	}
	return "", ""
}

func ambiguous(id string, fs []File) error {
	var names []string
	for _, f := range fs {
		names = append(names, filepath.Base(f.Path))
	}
	sort.Strings(names)
	return fmt.Errorf("snapshot %s is ambiguous: %s all exist in %s; keep one", id, strings.Join(names, ", "), filepath.Dir(fs[0].Path))
}
