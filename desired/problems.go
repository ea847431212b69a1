package desired

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Problem is one thing wrong with a desired file. Messages never carry a
// value that could be a secret; they name the key instead.
type Problem struct {
	File string
	Line int // 0 when unknown
	Key  string
	Msg  string
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	b.WriteString(": ")
	if p.Key != "" {
		b.WriteString(p.Key + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems is every problem found in one file, in line order. It is the
// error Load returns for an invalid file.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// shown returns a value fit to quote in a message, or a placeholder when it
// might be a secret or is too long to be useful.
func shown(v string) string {
	if len(v) > 80 || looksSecret(v) {
		return "(value not shown)"
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return "(value not shown)"
		}
	}
	return fmt.Sprintf("%q", v)
}

// looksSecret flags URLs with user info and anything that mentions a password.
func looksSecret(v string) bool {
	l := strings.ToLower(v)
	if strings.Contains(l, "://") && strings.Contains(l, "@") {
		return true
	}
	for _, w := range []string{"password", "passwd", "secret", "token", "pwd="} {
		if strings.Contains(l, w) {
			return true
		}
	}
	return false
}

// safeKey returns a key fit to print. Keys are the operator's own words, but
// a quoted key can hold anything, a pasted DSN or a newline that would forge
// a second FILE:LINE line.
func safeKey(k string) string {
	if len(k) > 80 || looksSecret(k) && !isSchemaKey(k) && !namesASecret(k) {
		return "(key not shown)"
	}
	for _, r := range k {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return "(key not shown)"
		}
	}
	return k
}

// namesASecret is a plain key like `password` or `redis.api_token`: the name
// of a secret, which the operator must see to fix, not the secret itself.
func namesASecret(k string) bool {
	return plainKeyRe.MatchString(k)
}

var plainKeyRe = regexp.MustCompile(`^[a-z][a-z0-9_]{0,39}(\.[a-z][a-z0-9_]{0,39})*$`)

func isSchemaKey(k string) bool {
	i := strings.LastIndex(k, ".")
	if i < 0 {
		return contains(schemaKeys()[""], k)
	}
	return contains(schemaKeys()[k[:i]], k[i+1:])
}
