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
	// Windows editors often save a UTF-8 BOM; it is not content.
	text := bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if blank(text) {
		return nil, Problems{{File: name, Msg: "the file is empty or holds only comments; refusing to read it as \"desired: nothing\" (if an editor is still writing it, save again)"}}
	}
	src := string(text)
	var d Desired
	md, err := decode(src, &d)
	if err != nil {
		return nil, Problems{decodeProblem(name, src, err)}
	}
	lines := keyLines(src)
	var ps Problems
	add := func(key, format string, args ...any) {
		ps = append(ps, Problem{File: name, Line: lineOf(lines, key), Key: safeKey(key), Msg: fmt.Sprintf(format, args...)})
	}
	if !md.IsDefined("schema") {
		add("", "no `schema` key; add `schema = %d` as the first line", SupportedSchema)
	} else if d.Schema != SupportedSchema {
		add("schema", "schema %d is not supported by this settle; it reads schema %d", d.Schema, SupportedSchema)
	}
	for _, k := range md.Undecoded() {
		if p, ok := unknownKey(md, k); ok {
			p.File, p.Line = name, lineOf(lines, strings.Join(k, "."))
			ps = append(ps, p)
		}
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
	d.Raw = data
	d.LoadedAt = time.Now()
	return &d, nil
}

// decode runs the TOML decoder and turns any panic inside it, or inside the
// error's position helper, into an ordinary error.
func decode(src string, d *Desired) (md toml.MetaData, err error) {
	defer func() {
		if r := recover(); r != nil {
			// The panic value may quote the input, so it stays out of the message.
			err = errors.New("the TOML parser failed on this file; check quoting and brackets")
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
		return parseProblem(name, src, pe)
	}
	m := typeErrRe.FindStringSubmatch(err.Error())
	if m == nil {
		return Problem{File: name, Msg: scrub(strings.TrimPrefix(err.Error(), "toml: "))}
	}
	line, _ := strconv.Atoi(m[1])
	key, msg := safeKey(m[2]), scrub(m[3])
	if line == 0 {
		line = lineOf(keyLines(src), m[2])
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

func parseProblem(name, src string, pe toml.ParseError) Problem {
	msg := scrub(pe.Message)
	p := Problem{File: name, Line: errLine(src, pe.Position), Msg: msg}
	switch {
	case strings.Contains(msg, "has already been defined"), strings.Contains(msg, "was already created"):
		p.Msg = strings.TrimSuffix(msg, ".") + "; each key and table may appear only once"
	case strings.Contains(msg, "unexpected EOF"), strings.Contains(msg, "unterminated"),
		strings.Contains(msg, "newlines not allowed"), strings.Contains(msg, "cannot contain newlines"),
		strings.Contains(msg, "to end table name"):
		p.Msg = msg + " (a string or bracket is not closed: is the file truncated or a quote missing?)"
	}
	return p
}

// errLine prefers the error's byte offset: the library's line counter has
// already moved past a newline when the newline itself is the offending rune.
func errLine(src string, pos toml.Position) int {
	if pos.Start < 0 || pos.Start > len(src) || pos.Start == 0 && pos.Line > 1 {
		return pos.Line
	}
	return 1 + strings.Count(src[:pos.Start], "\n")
}

var quotedRe = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'[^']*'`)

// scrub hides the input the library quotes in its messages: a lexer error
// can echo a whole string up to the fault, password and all. Single
// characters and short tokens stay, as they say what the parser tripped on;
// keys stay when they are fit to show.
func scrub(msg string) string {
	keyMsg := strings.HasPrefix(msg, "Key ") || strings.Contains(msg, "is not a table")
	msg = quotedRe.ReplaceAllStringFunc(msg, func(q string) string {
		inner := q[1 : len(q)-1]
		if keyMsg {
			if safeKey(inner) == inner {
				return q
			}
			return "(key not shown)"
		}
		if utf8.RuneCountInString(inner) <= 4 && !looksSecret(inner) {
			return q
		}
		return "(value not shown)"
	})
	// Some messages quote a raw newline; a problem is one line.
	var b strings.Builder
	for _, r := range msg {
		if r < 0x20 || r == 0x7f {
			fmt.Fprintf(&b, "\\x%02x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
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

// unknownKey words the problem for a key the schema does not have, with the
// nearest valid name at the same level. It leaves File and Line to Parse.
func unknownKey(md toml.MetaData, k toml.Key) (Problem, bool) {
	parent, leaf := strings.Join(k[:len(k)-1], "."), k[len(k)-1]
	valid, ok := schemaKeys()[parent]
	if !ok {
		return Problem{}, false // under an unknown table, which is reported itself
	}
	where := "at the top level"
	if parent != "" {
		where = "in [" + parent + "]"
	}
	what := "key"
	if md.Type(k...) == "Hash" {
		what = "table"
	}
	msg := fmt.Sprintf("unknown %s `%s` %s", what, safeKey(toml.Key{leaf}.String()), where)
	if s := nearest(leaf, valid); s != "" {
		msg += fmt.Sprintf("; did you mean `%s`?", s)
	} else {
		msg += "; valid keys: " + strings.Join(valid, ", ")
	}
	return Problem{Key: safeKey(k.String()), Msg: msg}, true
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
