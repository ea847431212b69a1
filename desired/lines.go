package desired

import "strings"

// keyLines maps every dotted key and table of a TOML document to the line it
// is defined on. The TOML library keeps positions private, so this scanner
// reads the (already parsed, hence well-formed) text once more. It only needs
// the common shapes: [table], [[array]], key = value, dotted and quoted keys.
func keyLines(src string) map[string]int {
	out := map[string]int{}
	table := ""
	inMulti := "" // the delimiter of an open multi-line string
	for i, raw := range strings.Split(src, "\n") {
		line := strings.TrimSpace(strings.TrimSuffix(raw, "\r"))
		if inMulti != "" {
			if strings.Contains(line, inMulti) {
				inMulti = ""
			}
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		if line[0] == '[' {
			hdr := strings.Trim(line, "[] \t")
			if j := strings.Index(hdr, "]"); j >= 0 {
				hdr = hdr[:j]
			}
			table = joinKey(splitKey(hdr))
			setFirst(out, table, i+1)
			continue
		}
		eq := strings.Index(line, "=")
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
		val := strings.TrimSpace(line[eq+1:])
		for _, d := range []string{`"""`, `'''`} {
			if strings.HasPrefix(val, d) && strings.Count(val, d) == 1 {
				inMulti = d
			}
		}
	}
	return out
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
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			cur.WriteByte(c)
		case c == '"' || c == '\'':
			quote = c
		case c == '.':
			parts = append(parts, strings.TrimSpace(cur.String()))
			cur.Reset()
		case c == ' ' || c == '\t':
		default:
			cur.WriteByte(c)
		}
	}
	return append(parts, strings.TrimSpace(cur.String()))
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
