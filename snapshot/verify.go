package snapshot

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"settle/reconcilers"
)

// Bin is the path of a PostgreSQL client program: in binDir when set, else
// found on PATH.
func Bin(binDir, name string) string {
	if binDir == "" {
		return name
	}
	return filepath.Join(binDir, name)
}

// Checksum returns the sha256 (hex) and size of path. sha256sum streams the
// file on the host, so a large dump never passes through settle's memory.
func Checksum(ctx context.Context, h reconcilers.Host, path string) (string, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	out, err := h.Run(ctx, reconcilers.Cmd{Argv: []string{"sha256sum", "--", path}})
	if err != nil {
		return "", 0, fmt.Errorf("checksum %s: %w", path, err)
	}
	sum, _, _ := strings.Cut(string(out), " ")
	if len(sum) != 64 {
		return "", 0, fmt.Errorf("checksum %s: sha256sum printed %q", path, strings.TrimSpace(string(out)))
	}
	out, err = h.Run(ctx, reconcilers.Cmd{Argv: []string{"stat", "-L", "-c", "%s", "--", path}})
	if err != nil {
		return "", 0, fmt.Errorf("size of %s: %w", path, err)
	}
	size, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("size of %s: %w", path, err)
	}
	return sum, size, nil
}

// CheckSum compares f with its manifest. Without a manifest there is
// nothing to compare and it returns "", nil.
func CheckSum(ctx context.Context, h reconcilers.Host, f File) (string, error) {
	if f.Manifest == nil {
		return "", nil
	}
	sum, size, err := Checksum(ctx, h, f.Path)
	if err != nil {
		return "", err
	}
	if size != f.Manifest.Size {
		return sum, fmt.Errorf("snapshot %s: %s is %d bytes, its manifest says %d: truncated or replaced; restore it from backup storage",
			f.ID, f.Path, size, f.Manifest.Size)
	}
	if sum != f.Manifest.SHA256 {
		return sum, fmt.Errorf("snapshot %s: sha256 of %s is %s, its manifest says %s: the file changed after it was written",
			f.ID, f.Path, sum, f.Manifest.SHA256)
	}
	return sum, nil
}

// Header is what a dump says about itself.
type Header struct {
	Database   string `json:"database,omitempty"`
	DumpedFrom string `json:"dumped_from,omitempty"` // server version
	DumpedBy   string `json:"dumped_by,omitempty"`   // pg_dump version
	ArchiveVer string `json:"archive_version,omitempty"`
	Entries    int    `json:"toc_entries"`
	TableData  int    `json:"table_data_entries"`
}

var headerRe = regexp.MustCompile(`(?m)^;\s+(dbname|Dump Version|Dumped from database version|Dumped by pg_dump version|TOC Entries):\s*(.*)$`)

// ParseTOC reads `pg_restore -l` output.
func ParseTOC(out string) Header {
	var hd Header
	for _, m := range headerRe.FindAllStringSubmatch(out, -1) {
		v := strings.TrimSpace(m[2])
		switch m[1] {
		case "dbname":
			hd.Database = v
		case "Dump Version":
			hd.ArchiveVer = v
		case "Dumped from database version":
			hd.DumpedFrom = v
		case "Dumped by pg_dump version":
			hd.DumpedBy = v
		case "TOC Entries":
			hd.Entries, _ = strconv.Atoi(v)
		}
	}
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(l, ";") && strings.Contains(l, " TABLE DATA ") {
			hd.TableData++
		}
	}
	return hd
}

var plainRe = regexp.MustCompile(`(?m)^-- (Dumped from database version|Dumped by pg_dump version) (.*)$`)

// ParsePlainHeader reads the comment header of a plain dump.
func ParsePlainHeader(out string) Header {
	var hd Header
	for _, m := range plainRe.FindAllStringSubmatch(out, -1) {
		if m[1] == "Dumped by pg_dump version" {
			hd.DumpedBy = strings.TrimSpace(m[2])
		} else {
			hd.DumpedFrom = strings.TrimSpace(m[2])
		}
	}
	return hd
}

// Major is the major version of a PostgreSQL version string ("15.20 (Debian
// ...)" -> 15, "9.6.3" -> 9.6 as 9), or 0 when it cannot tell.
func Major(v string) int {
	v = strings.TrimSpace(v)
	if i := strings.LastIndex(v, ") "); strings.HasPrefix(v, "pg_") && i >= 0 {
		v = v[i+2:] // "pg_restore (PostgreSQL) 15.20 ..."
	}
	end := strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' })
	if end < 0 {
		end = len(v)
	}
	n, _ := strconv.Atoi(v[:end])
	return n
}

// ReadHeader asks the dump for its header: `pg_restore -l` for a custom
// dump (which also proves its table of contents reads whole), the first
// lines for a plain one. A corrupt custom dump fails here.
func ReadHeader(ctx context.Context, h reconcilers.Host, binDir string, f File) (Header, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	switch f.Format {
	case Custom:
		out, err := h.Run(ctx, reconcilers.Cmd{Argv: []string{Bin(binDir, "pg_restore"), "-l", "--", f.Path}})
		if err != nil {
			return Header{}, fmt.Errorf("read table of contents of %s: %w", f.Path, tooOld(err))
		}
		hd := ParseTOC(string(out))
		if hd.ArchiveVer == "" {
			return hd, fmt.Errorf("read table of contents of %s: pg_restore -l printed no archive header", f.Path)
		}
		return hd, nil
	default:
		grep := "grep"
		if f.Format == SQLGz {
			grep = "zgrep" // decompresses as it reads; stops at the match limit
		}
		out, err := h.Run(ctx, reconcilers.Cmd{Argv: []string{grep, "-m", "2", "-E", "^-- Dumped (from database|by pg_dump) version", "--", f.Path}})
		if err != nil {
			var ce *reconcilers.CmdError
			if isCmdExit(err, &ce, 1) {
				return Header{}, fmt.Errorf("read header of %s: no \"-- Dumped by pg_dump version\" line: not a plain pg_dump file", f.Path)
			}
			return Header{}, fmt.Errorf("read header of %s: %w", f.Path, err)
		}
		return ParsePlainHeader(string(out)), nil
	}
}

func isCmdExit(err error, ce **reconcilers.CmdError, code int) bool {
	e, ok := err.(*reconcilers.CmdError)
	if ok {
		*ce = e
	}
	return ok && e.ExitCode == code
}

var unsupportedRe = regexp.MustCompile(`unsupported version \((\d+)\.\d+\)`)

// tooOld turns pg_restore's "unsupported version" into advice: archive
// versions are 1.x, so anything else is a damaged header, not a new dump.
func tooOld(err error) error {
	ce, ok := err.(*reconcilers.CmdError)
	if !ok {
		return err
	}
	if m := unsupportedRe.FindStringSubmatch(ce.Tail); m != nil {
		if m[1] == "1" {
			return fmt.Errorf("this pg_restore is too old for the dump; set postgres.bin_dir to the bin directory of a PostgreSQL at least as new as the one that made it: %w", err)
		}
		return fmt.Errorf("the file is corrupt: its header is not a pg_dump archive's: %w", err)
	}
	if strings.Contains(ce.Tail, "end of file") {
		return fmt.Errorf("the file is truncated: %w", err)
	}
	return err
}

// Report is what `settle snapshot verify` found.
type Report struct {
	File        File   `json:"file"`
	SHA256      string `json:"sha256"`
	HasManifest bool   `json:"has_manifest"`
	Header      Header `json:"header"`
}

// Verify proves a snapshot can be restored as far as can be told without
// restoring it: the checksum matches its manifest, a custom dump's table
// of contents reads whole, a gzip stream is intact, and a plain dump has
// pg_dump's header.
func Verify(ctx context.Context, h reconcilers.Host, binDir string, f File) (Report, error) {
	r := Report{File: f, HasManifest: f.Manifest != nil}
	sum, err := CheckSum(ctx, h, f)
	if err != nil {
		return r, err
	}
	if sum == "" {
		if sum, _, err = Checksum(ctx, h, f.Path); err != nil {
			return r, err
		}
	}
	r.SHA256 = sum
	if f.Format == SQLGz {
		gctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
		defer cancel()
		if _, err := h.Run(gctx, reconcilers.Cmd{Argv: []string{"gzip", "-t", "--", f.Path}}); err != nil {
			return r, fmt.Errorf("test gzip stream of %s: %w", f.Path, err)
		}
	}
	if r.Header, err = ReadHeader(ctx, h, binDir, f); err != nil {
		return r, err
	}
	if f.Format == Custom && r.Header.Entries == 0 {
		return r, fmt.Errorf("snapshot %s: table of contents is empty", f.ID)
	}
	return r, nil
}
