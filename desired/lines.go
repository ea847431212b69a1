package desired

import (
	"strconv"
	"strings"
)

// keyLines maps every dotted key and table of a TOML document to the line it
// is defined on. The TOML library keeps positions private, so this scanner
// reads the (already parsed, hence well-formed) text once more. Values are
// scanned only far enough to know where they end: a multi-line string or an
// array spanning lines can hold text that looks like `key = value`.
func keyLines(src string) map[string]int {
	out := map[string]int{}
	table := ""
	var st valueState
	for i, raw := range strings.Split(src, "\n") {
		line := strings.TrimSpace(strings.TrimSuffix(raw, "\r"))
		if st.open() {
			st.scan(line)
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		if line[0] == '[' {
			hdr := strings.TrimLeft(line, "[")
			if j := unquotedIndex(hdr, ']'); j >= 0 {
				hdr = hdr[:j]
			}
			table = joinKey(splitKey(hdr))
			setFirst(out, table, i+1)
			continue
		}
		eq := unquotedIndex(line, '=')
		if eq <= 0 {
			continue
		}
		key := joinKey(splitKey(line[:eq]))
		if key == "" {
			continue
		}
		full := key
		if table != "" {
			full = table + "." + key
		}
		setFirst(out, full, i+1)
		// Dotted keys define their parents too.
		for p := strings.LastIndex(full, "."); p > 0; p = strings.LastIndex(full[:p], ".") {
			setFirst(out, full[:p], i+1)
		}
		st.scan(line[eq+1:])
	}
	return out
}

// valueState is what a value left open at the end of a line: a multi-line
// string, or brackets of arrays and inline tables.
type valueState struct {
	multi string // `"""` or `'''` while inside a multi-line string
	depth int
}

func (st *valueState) open() bool { return st.multi != "" || st.depth > 0 }

func (st *valueState) scan(s string) {
	for i := 0; i < len(s); i++ {
		if st.multi != "" {
			switch {
			case st.multi == `"""` && s[i] == '\\':
				i++
			case strings.HasPrefix(s[i:], st.multi):
				i += len(st.multi) - 1
				// Up to two quotes right before the delimiter belong to the string.
				for i+1 < len(s) && s[i+1] == st.multi[0] {
					i++
				}
				st.multi = ""
			}
			continue
		}
		switch c := s[i]; c {
		case '"', '\'':
			if d := strings.Repeat(string(c), 3); strings.HasPrefix(s[i:], d) {
				st.multi = d
				i += 2
				continue
			}
			i += quotedLen(s[i:]) - 1
		case '[', '{':
			st.depth++
		case ']', '}':
			if st.depth > 0 {
				st.depth--
			}
		case '#':
			return
		}
	}
}

// quotedLen is the length of the single-line string that s starts with,
// quotes included, or len(s) when it is not closed on this line.
func quotedLen(s string) int {
	q := s[0]
	for i := 1; i < len(s); i++ {
		switch {
		case q == '"' && s[i] == '\\':
			i++
		case s[i] == q:
			return i + 1
		}
	}
	return len(s)
}

// unquotedIndex is the index of the first c in s outside quoted strings.
func unquotedIndex(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case c:
			return i
		case '"', '\'':
			i += quotedLen(s[i:]) - 1
		}
	}
	return -1
}

func setFirst(m map[string]int, k string, line int) {
	if _, ok := m[k]; !ok {
		m[k] = line
	}
}

// splitKey splits a TOML key on dots outside quotes and unquotes each part.
func splitKey(s string) []string {
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\'':
			n := quotedLen(s[i:])
			q := s[i : i+n]
			if u, err := strconv.Unquote(q); c == '"' && err == nil {
				cur.WriteString(u)
			} else {
				cur.WriteString(strings.Trim(q, string(c)))
			}
			i += n - 1
		case '.':
			parts = append(parts, cur.String())
			cur.Reset()
		case ' ', '\t':
		default:
			cur.WriteByte(c)
		}
	}
	return append(parts, cur.String())
}

func joinKey(parts []string) string { return strings.Join(parts, ".") }

// lineOf finds the line of a key, falling back to its nearest defined parent.
func lineOf(lines map[string]int, key string) int {
	for k := key; k != ""; {
		if l, ok := lines[k]; ok {
			return l
		}
		j := strings.LastIndex(k, ".")
		if j < 0 {
			break
		}
		k = k[:j]
	}
	return 0
}
