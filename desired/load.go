package desired

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
)

// SupportedSchema is the only schema this build reads.
const SupportedSchema = 1

// MaxFileSize bounds what Load reads; a desired file is a page of text.
const MaxFileSize = 1 << 20

// Load reads, decodes and validates path, then records its generation and
// git provenance. On any problem it returns Problems and no Desired: a file
// that is not entirely right is never acted on.
func Load(path string) (*Desired, error) {
	data, err := readBounded(path)
	if err != nil {
		return nil, Problems{{File: path, Msg: "cannot read: " + errMsg(err)}}
	}
	d, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	d.Git = GitOf(path)
	return d, nil
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("file is larger than %d bytes; a desired file is a page of text", MaxFileSize)
	}
	return data, nil
}

func errMsg(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// Parse decodes and validates data as the desired file named name. It does
// no I/O, so it is safe to fuzz.
func Parse(name string, data []byte) (*Desired, error) {
	if !utf8.Valid(data) {
		return nil, Problems{{File: name, Line: firstBadLine(data), Msg: "the file is not UTF-8 text"}}
	}
	if blank(data) {
		return nil, Problems{{File: name, Msg: "the file is empty or holds only comments; refusing to read it as \"desired: nothing\" (if an editor is still writing it, save again)"}}
	}
	src := string(data)
	var d Desired
	md, err := decode(src, &d)
	if err != nil {
		return nil, Problems{decodeProblem(name, src, err)}
	}
	lines := keyLines(src)
	var ps Problems
	add := func(key, format string, args ...any) {
		ps = append(ps, Problem{File: name, Line: lineOf(lines, key), Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	if !md.IsDefined("schema") {
		add("", "no `schema` key; add `schema = %d` as the first line", SupportedSchema)
	} else if d.Schema != SupportedSchema {
		add("schema", "schema %d is not supported by this settle; it reads schema %d", d.Schema, SupportedSchema)
	}
	for _, k := range md.Undecoded() {
		unknownKey(k, add)
	}
	d.applyDefaults()
	validate(&d, md, add)
	if len(ps) > 0 {
		sort.SliceStable(ps, func(i, j int) bool { return ps[i].Line < ps[j].Line })
		return nil, ps
	}
	sum := sha256.Sum256(data)
	d.Path = name
	d.Generation = hex.EncodeToString(sum[:])
	d.LoadedAt = time.Now()
	return &d, nil
}

// decode runs the TOML decoder and turns any panic inside it, or inside the
// error's position helper, into an ordinary error.
func decode(src string, d *Desired) (md toml.MetaData, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the TOML parser failed on this file (%v); check quoting and brackets", r)
		}
	}()
	return toml.Decode(src, d)
}

var (
	// The decoder's type errors are plain strings, not ParseErrors.
	typeErrRe = regexp.MustCompile(`^toml: (?:line (\d+) )?\(last key "([^"]*)"\): (.*)$`)
	badTypeRe = regexp.MustCompile(`incompatible types: TOML value has type ([^;]+); destination has type (.+)$`)
	notTabRe  = regexp.MustCompile(`type mismatch for .*: expected table but found (.+)$`)
)

// decodeProblem rewords the TOML library's errors for an operator.
func decodeProblem(name, src string, err error) Problem {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return parseProblem(name, pe)
	}
	m := typeErrRe.FindStringSubmatch(err.Error())
	if m == nil {
		return Problem{File: name, Msg: strings.TrimPrefix(err.Error(), "toml: ")}
	}
	line, _ := strconv.Atoi(m[1])
	key, msg := m[2], m[3]
	if line == 0 {
		line = lineOf(keyLines(src), key)
	}
	p := Problem{File: name, Line: line, Key: key, Msg: msg}
	if t := badTypeRe.FindStringSubmatch(msg); t != nil {
		p.Msg = fmt.Sprintf("must be %s, not %s", goTypeName(t[2]), tomlTypeName(t[1]))
	} else if t := notTabRe.FindStringSubmatch(msg); t != nil {
		if strings.HasPrefix(t[1], "[]map") {
			p.Msg = fmt.Sprintf("`[[%s]]` makes an array of tables; this section is a single table, write `[%s]`", key, key)
		} else {
			p.Msg = fmt.Sprintf("must be a table (`[%s]`), not %s", key, tomlTypeName(t[1]))
		}
	}
	return p
}

func parseProblem(name string, pe toml.ParseError) Problem {
	p := Problem{File: name, Line: pe.Position.Line, Msg: pe.Message}
	switch {
	case strings.Contains(pe.Message, "has already been defined"):
		p.Msg = strings.TrimSuffix(pe.Message, ".") + "; each key and table may appear only once"
	case strings.Contains(pe.Message, "unexpected EOF"), strings.Contains(pe.Message, "unterminated"),
		strings.Contains(pe.Message, "newlines not allowed"):
		p.Msg = pe.Message + " (a string or bracket is not closed: is the file truncated or a quote missing?)"
	}
	return p
}

func tomlTypeName(t string) string {
	switch {
	case strings.HasPrefix(t, "int"):
		return "an integer"
	case strings.HasPrefix(t, "float"):
		return "a float"
	case t == "string":
		return "a string"
	case t == "bool":
		return "a boolean"
	case strings.HasPrefix(t, "[]"):
		return "an array"
	case strings.HasPrefix(t, "map"):
		return "a table"
	case strings.Contains(t, "time"):
		return "a date/time"
	}
	return t
}

func goTypeName(t string) string {
	switch {
	case strings.HasPrefix(t, "int"):
		return "an integer"
	case t == "string":
		return "a string (in quotes)"
	case t == "bool", t == "boolean":
		return "true or false"
	case t == "struct", strings.HasPrefix(t, "map"):
		return "table"
	}
	return t
}

func blank(data []byte) bool {
	for _, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			return false
		}
	}
	return true
}

func firstBadLine(data []byte) int {
	for i, l := range bytes.Split(data, []byte("\n")) {
		if !utf8.Valid(l) {
			return i + 1
		}
	}
	return 0
}

// unknownKey reports a key the schema does not have, with the nearest valid
// name at the same level.
func unknownKey(k toml.Key, add func(key, format string, args ...any)) {
	parent, leaf := strings.Join(k[:len(k)-1], "."), k[len(k)-1]
	valid, ok := schemaKeys()[parent]
	if !ok {
		return // under an unknown table, which is reported itself
	}
	where := "at the top level"
	if parent != "" {
		where = "in [" + parent + "]"
	}
	msg := fmt.Sprintf("unknown key `%s` %s", leaf, where)
	if s := nearest(leaf, valid); s != "" {
		msg += fmt.Sprintf("; did you mean `%s`?", s)
	} else {
		msg += "; valid keys: " + strings.Join(valid, ", ")
	}
	add(k.String(), "%s", msg)
}

// schemaKeys lists the valid keys of every table, from the struct tags.
func schemaKeys() map[string][]string {
	out := map[string][]string{}
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		var keys []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("toml")
			if tag == "" || tag == "-" {
				continue
			}
			keys = append(keys, tag)
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				p := tag
				if prefix != "" {
					p = prefix + "." + tag
				}
				walk(p, ft)
			}
		}
		out[prefix] = keys
	}
	walk("", reflect.TypeOf(Desired{}))
	return out
}

// nearest returns the valid key closest to s, if it is close enough to be
// a plausible typo.
func nearest(s string, valid []string) string {
	best, bestD := "", 1<<30
	for _, v := range valid {
		if d := levenshtein(s, v); d < bestD {
			best, bestD = v, d
		}
	}
	if bestD <= 2 || (bestD <= len(s)/2 && bestD <= 4) || strings.Contains(best, s) && len(s) >= 3 {
		return best
	}
	return ""
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
