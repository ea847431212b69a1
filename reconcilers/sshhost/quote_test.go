package sshhost

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"settle/reconcilers"
)

// hostile are values an attacker (or a bad paste) could put in a path,
// name or environment value, each trying to end the quoting and run a
// command that leaves a marker file.
func hostile(marker string) []string {
	return []string{
		"'; touch " + marker + "; '",
		"'\"; touch " + marker + "; \"'",
		"$(touch " + marker + ")",
		"`touch " + marker + "`",
		"a\ntouch " + marker,
		"x' ; touch " + marker + " #",
		"\\'; touch " + marker + "; echo \\",
		"${IFS}$(touch${IFS}" + marker + ")",
		"'$(touch " + marker + ")'",
		"-n", "--", "", " ", "*", "~", "!", "a\\", "\\", "'", "''", "\"", "\t\r\n",
		"; touch " + marker, "| touch " + marker, "&& touch " + marker,
		"é ünïcödé ✓", "\x01\x7f",
	}
}

// sh runs line with the local POSIX sh, as sshd hands it to the login shell.
func sh(t *testing.T, line string) string {
	t.Helper()
	out, err := exec.Command("sh", "-c", line).CombinedOutput()
	if err != nil {
		t.Fatalf("sh -c %q: %v: %s", line, err, out)
	}
	return string(out)
}

func TestQuoteRoundTripsThroughSh(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "pwned")
	for _, v := range hostile(marker) {
		if got := sh(t, "printf '%s' "+Quote(v)); got != v {
			t.Errorf("Quote(%q) came back from sh as %q", v, got)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a hostile value ran a command: the marker exists")
	}
}

func TestQuoteShape(t *testing.T) {
	for in, want := range map[string]string{
		"":         "''",
		"abc":      "'abc'",
		"it's":     `'it'\''s'`,
		"'":        `''\'''`,
		"$(id)":    "'$(id)'",
		"a b\nc\t": "'a b\nc\t'",
	} {
		if got := Quote(in); got != want {
			t.Errorf("Quote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestCommandCarriesHostileValuesIntact(t *testing.T) {
	tmp := t.TempDir()
	marker := filepath.Join(tmp, "pwned")
	for i, v := range hostile(marker) {
		dir := filepath.Join(tmp, "d"+strings.Repeat("x", i), v)
		if v == "" || strings.ContainsAny(v, "/\x01\x7f") || strings.HasSuffix(v, "\n") {
			// Not a directory name, or one $(pwd) would trim: the
			// value still goes through argv and env.
			dir = tmp
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		line, err := Command(reconcilers.Cmd{
			Argv: []string{"sh", "-c", `printf '%s|%s|%s' "$(pwd)" "$V" "$1"`, "sh", v},
			Dir:  dir,
			Env:  []string{"V=" + v},
		})
		if err != nil {
			t.Fatalf("Command with %q: %v", v, err)
		}
		want := dir + "|" + v + "|" + v
		if got := sh(t, line); got != want {
			t.Errorf("value %q\nline %s\ngot  %q\nwant %q", v, line, got, want)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a hostile value ran a command: the marker exists")
	}
}

func TestCommandShape(t *testing.T) {
	got, err := Command(reconcilers.Cmd{Argv: []string{"pm2", "start", "eco.js", "--only", "a-blue"}, Dir: "/srv/a b", Env: []string{"PM2_HOME=/h/.pm2"}})
	if err != nil {
		t.Fatal(err)
	}
	want := `cd -- '/srv/a b' && exec env -- 'PM2_HOME=/h/.pm2' 'pm2' 'start' 'eco.js' '--only' 'a-blue'`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if got, _ := Command(reconcilers.Cmd{Argv: []string{"true"}}); got != "exec 'true'" {
		t.Errorf("plain command: %s", got)
	}
}

func TestCommandRefuses(t *testing.T) {
	const pw = "Sup3rSecretPW"
	for name, c := range map[string]reconcilers.Cmd{
		"empty argv":             {},
		"NUL in an argument":     {Argv: []string{"cat", "a\x00b"}},
		"NUL in dir":             {Argv: []string{"ls"}, Dir: "/tmp\x00/x"},
		"NUL in an env value":    {Argv: []string{"psql"}, Env: []string{"PGPASSWORD=" + pw + "\x00"}},
		"env without =":          {Argv: []string{"psql"}, Env: []string{"PGPASSWORD"}},
		"env key with a space":   {Argv: []string{"psql"}, Env: []string{"PG PASSWORD=" + pw}},
		"env key with a quote":   {Argv: []string{"psql"}, Env: []string{"X';id;'=" + pw}},
		"program read as option": {Argv: []string{"-c", "id"}},
		"program read as env":    {Argv: []string{"A=B", "id"}},
		"empty program":          {Argv: []string{"", "id"}},
	} {
		line, err := Command(c)
		if err == nil {
			t.Errorf("%s: accepted as %s", name, line)
			continue
		}
		if strings.Contains(err.Error(), pw) {
			t.Errorf("%s: the env value leaked: %v", name, err)
		}
	}
}
