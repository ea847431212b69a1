// Package forensics saves the evidence of an incident (logs, configs, the
// desired file before and after) before settle does anything destructive.
package forensics

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"settle/reconcilers"
)

// Source is a file on the managed host to keep, whole or its last
// TailBytes (logs grow without bound).
type Source struct {
	Name      string // file name inside the capture, e.g. "nginx-error.log"
	Path      string
	TailBytes int64 // 0: the whole file
}

// Options says where and why to capture.
type Options struct {
	StateDir string // captures go under StateDir/forensics/, on this machine
	Reason   string // becomes part of the directory name
	Now      time.Time
	Files    []Source
	Extra    map[string][]byte // name -> content, e.g. "desired-before.toml"
}

// Index is index.json: what a capture holds and what it could not get.
type Index struct {
	Reason  string    `json:"reason"`
	At      time.Time `json:"at"`
	Host    string    `json:"host"`
	Files   []Item    `json:"files"`
	Failed  []Failure `json:"failed"`
	Updated time.Time `json:"updated"`
}

// Item is one captured file.
type Item struct {
	Name      string    `json:"name"`
	Source    string    `json:"source,omitempty"` // path on the host; "" for extras
	Size      int64     `json:"size"`
	SHA256    string    `json:"sha256"` // of the bytes as stored, after redaction
	Truncated bool      `json:"truncated,omitempty"`
	Redacted  bool      `json:"redacted"` // text, passed through Redact
	Added     time.Time `json:"added"`
}

// Failure is a file that could not be captured.
type Failure struct {
	Name   string `json:"name"`
	Source string `json:"source,omitempty"`
	Error  string `json:"error"`
}

const sourceTimeout = 30 * time.Second

// mu serialises index updates: AddFile may run while a capture finishes.
var mu sync.Mutex

// Capture creates StateDir/forensics/<UTC time>-<reason>/ and saves every
// source and extra into it. A source that cannot be read is recorded in
// the index, not fatal: half the evidence beats none, and a rollback must
// not wait on a missing log. Only failing to create the directory or to
// write into it is an error.
func Capture(ctx context.Context, h reconcilers.Host, opts Options) (string, error) {
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	now = now.UTC()
	root := filepath.Join(opts.StateDir, "forensics")
	if err := os.MkdirAll(root, 0o700); err != nil {
		return "", fmt.Errorf("forensics: %w", err)
	}
	dir, err := mkdirUnique(root, now.Format("20060102T150405Z")+"-"+slug(opts.Reason))
	if err != nil {
		return "", fmt.Errorf("forensics: %w", err)
	}
	idx := &Index{Reason: reconcilers.Redact(opts.Reason), At: now, Host: h.String(), Files: []Item{}, Failed: []Failure{}}
	fail := func(name, src string, err error) {
		idx.Failed = append(idx.Failed, Failure{Name: name, Source: src, Error: reconcilers.Redact(err.Error())})
	}
	seen := map[string]bool{}
	for _, s := range opts.Files {
		if err := checkName(s.Name); err != nil || seen[s.Name] {
			if err == nil {
				err = fmt.Errorf("file name %q used twice", s.Name)
			}
			fail(s.Name, s.Path, err)
			continue
		}
		seen[s.Name] = true
		data, truncated, err := read(ctx, h, s)
		if err != nil {
			fail(s.Name, s.Path, err)
			continue
		}
		it, err := store(dir, s.Name, data, now, true)
		if err != nil {
			return dir, err
		}
		it.Source, it.Truncated = s.Path, truncated
		idx.Files = append(idx.Files, it)
	}
	for _, name := range sortedNames(opts.Extra) {
		if err := checkName(name); err != nil || seen[name] {
			if err == nil {
				err = fmt.Errorf("file name %q used twice", name)
			}
			fail(name, "", err)
			continue
		}
		seen[name] = true
		it, err := store(dir, name, opts.Extra[name], now, true)
		if err != nil {
			return dir, err
		}
		idx.Files = append(idx.Files, it)
	}
	mu.Lock()
	defer mu.Unlock()
	return dir, writeIndex(dir, idx, now)
}

// AddFile adds data to an existing capture as name and updates its
// index; the dump of a replaced database arrives after the swap.
func AddFile(dir, name string, data []byte) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("forensics: add %q: %w", name, err)
	}
	mu.Lock()
	defer mu.Unlock()
	idx, err := ReadIndex(dir)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	it, err := store(dir, name, data, now, isText(data))
	if err != nil {
		return err
	}
	files := idx.Files[:0]
	for _, f := range idx.Files {
		if f.Name != name {
			files = append(files, f)
		}
	}
	idx.Files = append(files, it)
	return writeIndex(dir, idx, now)
}

// ReadIndex loads a capture's index.json.
func ReadIndex(dir string) (*Index, error) {
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		return nil, fmt.Errorf("forensics: read index: %w", err)
	}
	var idx Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("forensics: read index %s: %w", dir, err)
	}
	return &idx, nil
}

// read fetches a source from the host: `tail -c` for a tail, so only the
// tail crosses an SSH link; ReadFile when tail fails for another reason
// than a missing file, or for a whole file.
func read(ctx context.Context, h reconcilers.Host, s Source) ([]byte, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, sourceTimeout)
	defer cancel()
	if s.TailBytes > 0 {
		out, err := h.Run(ctx, reconcilers.Cmd{Argv: []string{"tail", "-c", strconv.FormatInt(s.TailBytes, 10), "--", s.Path}})
		if err == nil {
			return out, int64(len(out)) >= s.TailBytes, nil
		}
	}
	b, err := h.ReadFile(ctx, s.Path)
	if err != nil {
		if reconcilers.IsNotExist(err) {
			return nil, false, fmt.Errorf("missing: %w", err)
		}
		return nil, false, err
	}
	if s.TailBytes > 0 && int64(len(b)) > s.TailBytes {
		return b[int64(len(b))-s.TailBytes:], true, nil
	}
	return b, false, nil
}

// store writes one file 0600, redacted when redact is set. Captured logs
// are always redacted, valid UTF-8 or not (a tail cut mid-character, one
// stray byte); only a file added whole and binary, such as a custom-format
// database dump, is kept as is, since masking bytes would corrupt it.
func store(dir, name string, data []byte, now time.Time, redact bool) (Item, error) {
	redacted := redact
	if redacted {
		data = []byte(reconcilers.Redact(string(data)))
	}
	if err := reconcilers.WriteFileAtomic(filepath.Join(dir, name), data, 0o600); err != nil {
		return Item{}, fmt.Errorf("forensics: write %s: %w", name, err)
	}
	sum := sha256.Sum256(data)
	return Item{Name: name, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]), Redacted: redacted, Added: now}, nil
}

func isText(b []byte) bool {
	return utf8.Valid(b) && !strings.ContainsRune(string(b), 0)
}

func writeIndex(dir string, idx *Index, now time.Time) error {
	idx.Updated = now
	b, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return fmt.Errorf("forensics: index: %w", err)
	}
	if err := reconcilers.WriteFileAtomic(filepath.Join(dir, "index.json"), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("forensics: write index: %w", err)
	}
	if err := reconcilers.WriteFileAtomic(filepath.Join(dir, "INDEX.md"), []byte(markdown(idx)), 0o600); err != nil {
		return fmt.Errorf("forensics: write INDEX.md: %w", err)
	}
	return nil
}

func markdown(idx *Index) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Forensics: %s\n\nCaptured %s from %s, as settle began the change.\n", idx.Reason, idx.At.Format(time.RFC3339), idx.Host)
	fmt.Fprintf(&b, "Text files were passed through settle's secret redaction; sha256 is of the stored bytes.\n\n")
	b.WriteString("| file | from | size | sha256 | note |\n|---|---|---|---|---|\n")
	for _, f := range idx.Files {
		var note []string
		if f.Truncated {
			note = append(note, "tail only")
		}
		if !f.Redacted {
			note = append(note, "binary, not redacted")
		}
		fmt.Fprintf(&b, "| %s | %s | %d | `%s` | %s |\n", cell(f.Name), cell(f.Source), f.Size, f.SHA256, strings.Join(note, ", "))
	}
	if len(idx.Failed) > 0 {
		b.WriteString("\n## Not captured\n\n")
		for _, f := range idx.Failed {
			fmt.Fprintf(&b, "- %s (%s): %s\n", cell(f.Name), cell(f.Source), cell(f.Error))
		}
	}
	return b.String()
}

func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// checkName keeps every file inside the capture directory and off the
// index's own names.
func checkName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return errors.New("empty file name")
	case strings.ContainsAny(name, `/\`) || strings.ContainsRune(name, 0):
		return fmt.Errorf("file name %q has a path separator", name)
	case strings.HasPrefix(name, "."):
		return fmt.Errorf("file name %q is hidden", name)
	case name == "index.json" || name == "INDEX.md":
		return fmt.Errorf("file name %q is the capture's index", name)
	}
	return nil
}

var nonSlug = regexp.MustCompile(`[^a-z0-9]+`)

func slug(reason string) string {
	s := strings.Trim(nonSlug.ReplaceAllString(strings.ToLower(reason), "-"), "-")
	if len(s) > 48 {
		s = strings.TrimRight(s[:48], "-")
	}
	if s == "" {
		return "capture"
	}
	return s
}

// mkdirUnique creates root/name, or name-2, name-3...: two captures in one
// second must not mix their files.
func mkdirUnique(root, name string) (string, error) {
	for i := 1; ; i++ {
		dir := filepath.Join(root, name)
		if i > 1 {
			dir = fmt.Sprintf("%s-%d", dir, i)
		}
		err := os.Mkdir(dir, 0o700)
		if err == nil {
			// Mkdir's mode is masked by umask; the evidence is not.
			return dir, os.Chmod(dir, 0o700)
		}
		if !os.IsExist(err) || i >= 100 {
			return "", err
		}
	}
}

func sortedNames(m map[string][]byte) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// AddStream adds a file written by fill (a database dump, which may be
// larger than memory) to an existing capture, mode 0600, unredacted: it is
// binary. The index records its size and sha256.
func AddStream(dir, name string, fill func(io.Writer) error) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("forensics: add %q: %w", name, err)
	}
	f, err := os.CreateTemp(dir, "."+name+".partial-*")
	if err != nil {
		return fmt.Errorf("forensics: add %s: %w", name, err)
	}
	defer os.Remove(f.Name())
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	err = fill(cw)
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(dir, name))
	}
	if err != nil {
		return fmt.Errorf("forensics: add %s: %w", name, err)
	}
	mu.Lock()
	defer mu.Unlock()
	idx, err := ReadIndex(dir)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	idx.Files = append(idx.Files, Item{Name: name, Size: cw.n, SHA256: hex.EncodeToString(h.Sum(nil)), Added: now})
	return writeIndex(dir, idx, now)
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
