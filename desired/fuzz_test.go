package desired

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// plantedRe finds what follows "password=" in the input: the fuzzer's
// stand-in for a secret pasted into the file.
var plantedRe = regexp.MustCompile(`password=([A-Za-z0-9]+)`)

func FuzzParse(f *testing.F) {
	ex := example(f)
	for _, s := range []string{
		ex,
		strings.ReplaceAll(ex, "\n", "\r\n"),
		"\xef\xbb\xbf" + ex,
		"",
		"# only a comment\n",
		ex[:len(ex)/2],
		strings.Replace(ex, "[app]", "[[app]]", 1),
		strings.Replace(ex, `"SETTLE_PG_DSN"`, `"postgres://u:password=Hunter2xyz@db/cep"`, 1),
		strings.Replace(ex, `"SETTLE_PG_DSN"`, `"password=Hunter2xyz\x"`, 1),
		strings.Replace(ex, "[redis]\n", "[redis]\n\"password=Hunter2xyz\" = 1\n", 1),
		"schema = 1\napp.blue.port = 3000\nx = [\n'''\n]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse("f.toml", data)
		if err == nil {
			if d == nil || !hex64.MatchString(d.Generation) {
				t.Fatalf("no error, Desired %v", d)
			}
			return
		}
		if d != nil {
			t.Fatal("Desired returned with an error")
		}
		var ps Problems
		if !errors.As(err, &ps) || len(ps) == 0 {
			t.Fatalf("error %T is not Problems: %v", err, err)
		}
		for _, p := range ps {
			if p.File != "f.toml" || p.Line < 0 || strings.ContainsAny(p.String(), "\n\r") {
				t.Fatalf("bad problem %+v", p)
			}
		}
		msg := err.Error()
		for _, m := range plantedRe.FindAllStringSubmatch(string(data), -1) {
			// Like a real password, a planted one has an upper-case letter and a
			// digit, so it cannot be a word of settle's own messages.
			if len(m[1]) < 8 || !strings.ContainsAny(m[1], "0123456789") || !strings.ContainsAny(m[1], "ABCDEFGHIJKLMNOPQRSTUVWXYZ") {
				continue
			}
			if strings.Contains(msg, m[1]) && !strings.Contains(strings.ReplaceAll(string(data), m[0], ""), m[1]) {
				t.Fatalf("planted secret %q leaked:\n%s", m[1], msg)
			}
		}
	})
}
