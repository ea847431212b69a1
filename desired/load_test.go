package desired

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/bad")

// example is the DESIGN.md example, the base every bad case edits.
func example(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("testdata/design-example.toml")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// edit applies old→new replacements to the example, failing the test when
// one does not match: a stale edit would silently test the good file.
func edit(t testing.TB, pairs ...string) string {
	t.Helper()
	s := example(t)
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("edit: %q not found in the example", pairs[i])
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	return s
}

func parseProblems(t *testing.T, src string) Problems {
	t.Helper()
	d, err := Parse("desired.toml", []byte(src))
	if err == nil {
		t.Fatalf("Parse accepted the file: %+v", d)
	}
	if d != nil {
		t.Error("Parse returned a Desired along with an error")
	}
	var ps Problems
	if !errors.As(err, &ps) || len(ps) == 0 {
		t.Fatalf("error is %T %v, want non-empty Problems", err, err)
	}
	return ps
}

type badCase struct {
	name   string
	src    string
	line   int    // of the problem that carries want; 0 when no line applies
	want   string // a distinctive part of that problem
	secret string // must appear nowhere in the error
}

func badCases(t *testing.T) []badCase {
	ex := example(t)
	app := "[app]\n"
	return []badCase{
		{name: "unknown top-level key suggests agent", src: edit(t, "schema = 1\n", "schema = 1\nagnet = 1\n"),
			line: 2, want: "unknown key `agnet` at the top level; did you mean `agent`?"},
		{name: "unknown key in app suggests active", src: edit(t, `active  = "blue"`, `actve   = "blue"`),
			line: 5, want: "unknown key `actve` in [app]; did you mean `active`?"},
		{name: "unknown key in app.blue suggests port", src: edit(t, "port       = 3000", "prot       = 3000"),
			line: 10, want: "unknown key `prot` in [app.blue]; did you mean `port`?"},
		{name: "unknown key in postgres suggests dsn_env", src: edit(t, `dsn_env      = "SETTLE_PG_DSN"`, `dsn_evn      = "SETTLE_PG_DSN"`),
			line: 32, want: "unknown key `dsn_evn` in [postgres]; did you mean `dsn_env`?"},
		{name: "unknown table nginz suggests nginx", src: edit(t, "[nginx]", "[nginz]"),
			line: 23, want: "unknown table `nginz` at the top level; did you mean `nginx`?"},
		{name: "port as string", src: edit(t, "port       = 3000", `port       = "3000"`),
			line: 10, want: "app.blue.port: must be an integer, not a string"},
		{name: "flush as string", src: edit(t, "flush_on_snapshot_change = true", `flush_on_snapshot_change = "yes"`),
			line: 37, want: "must be true or false, not a string"},
		{name: "app as string", src: "schema = 1\napp = \"cepcomunicacion\"\n",
			line: 2, want: "app: must be a table (`[app]`), not a string"},
		{name: "modes as integer", src: ex + "\n[agent]\nmodes = 1\n",
			line: 40, want: "agent.modes: must be a table"},
		{name: "duplicate key", src: edit(t, `active  = "blue"`, "active  = \"blue\"\nactive  = \"green\""),
			line: 6, want: "Key 'app.active' has already been defined; each key and table may appear only once"},
		{name: "duplicate table", src: ex + "\n[pm2]\nbin = \"pm2\"\n",
			line: 39, want: "Key 'pm2' has already been defined"},
		{name: "array of tables where a table is meant", src: edit(t, app, "[[app]]\n"),
			line: 3, want: "`[[app]]` makes an array of tables; this section is a single table, write `[app]`"},
		{name: "unterminated string", src: edit(t, `3001/api/health"`, `3001/api/health`),
			line: 18, want: "strings cannot contain newlines (a string or bracket is not closed"},
		{name: "unclosed table header", src: edit(t, "[pm2]", "[pm2"),
			line: 20, want: "to end table name"},
		{name: "file truncated inside a string", src: ex[:strings.Index(ex, "cepcomunicacion_2")],
			line: 30, want: "unexpected EOF"},
		{name: "empty file", src: "", want: "the file is empty or holds only comments"},
		{name: "whitespace only", src: " \n\t\r\n  \n", want: "the file is empty or holds only comments"},
		{name: "comments only", src: "# desired state\n  # to be written\n", want: "the file is empty or holds only comments"},
		{name: "BOM and comments only", src: "\xef\xbb\xbf# desired\r\n", want: "the file is empty or holds only comments"},
		{name: "missing schema", src: edit(t, "schema = 1\n", ""), want: "no `schema` key"},
		{name: "schema 2", src: edit(t, "schema = 1", "schema = 2"),
			line: 1, want: "schema 2 is not supported by this settle; it reads schema 1"},
		{name: "bad color suggests blue", src: edit(t, `active  = "blue"`, `active  = "bleu"`),
			line: 5, want: `"bleu" is not one of "blue", "green"; did you mean "blue"?`},
		{name: "bad standby", src: edit(t, `standby = "running"`, `standby = "paused"`),
			line: 6, want: `app.standby: "paused" is not one of "running", "stopped"`},
		{name: "port 0", src: edit(t, "port       = 3000", "port       = 0"),
			line: 10, want: "app.blue.port: port 0 is out of range; use 1..65535"},
		{name: "port 70000", src: edit(t, "port       = 3001", "port       = 70000"),
			line: 16, want: "app.green.port: port 70000 is out of range"},
		{name: "blue and green on one port", src: edit(t, "port       = 3001", "port       = 3000"),
			line: 16, want: "blue and green both use port 3000"},
		{name: "relative dir", src: edit(t, `"/var/www/cepcomunicacion-blue"`, `"var/www/cepcomunicacion-blue"`),
			line: 9, want: `app.blue.dir: "var/www/cepcomunicacion-blue" is not an absolute path`},
		{name: "dotdot in dir", src: edit(t, `"/var/www/cepcomunicacion-blue"`, `"/var/www/../../etc"`),
			line: 9, want: "must not contain '..'"},
		{name: "dir with nginx metacharacters", src: edit(t, `"/var/www/cepcomunicacion"`, `"/var/www/x; deny all"`),
			line: 15, want: "no spaces, quotes or ;{}$"},
		{name: "dir with newline escape", src: edit(t, `"/var/www/cepcomunicacion"`, `"/var/www/x\nroot /"`),
			line: 15, want: "app.green.dir: (value not shown) may hold only"},
		{name: "ecosystem absolute", src: edit(t, `"ecosystem.config.js"            # relative`, `"/etc/ecosystem.config.js" # relative`),
			line: 11, want: `"/etc/ecosystem.config.js" must be relative to the color's dir`},
		{name: "ecosystem with dotdot", src: edit(t, "ecosystem  = \"ecosystem.config.js\"\nhealth", "ecosystem  = \"../other/ecosystem.config.js\"\nhealth"),
			line: 17, want: "app.green.ecosystem: \"../other/ecosystem.config.js\" must be a plain relative path"},
		{name: "ecosystem that pm2 would read as an option", src: edit(t, "ecosystem  = \"ecosystem.config.js\"\nhealth", "ecosystem  = \"--watch\"\nhealth"),
			line: 17, want: "app.green.ecosystem: \"--watch\" must not start a path element with '-'"},
		{name: "health_url ftp", src: edit(t, `"http://127.0.0.1:3000/api/health"`, `"ftp://127.0.0.1/health"`),
			line: 12, want: `"ftp://127.0.0.1/health" is not an http(s) URL`},
		{name: "health_url garbage", src: edit(t, `"http://127.0.0.1:3000/api/health"`, `"healthy please"`),
			line: 12, want: `"healthy please" is not an http(s) URL`},
		{name: "health_url with password in userinfo", src: edit(t, `"http://127.0.0.1:3000/api/health"`, `"http://admin:Sup3rS3cretPW@127.0.0.1:3000/api/health"`),
			line: 12, want: "app.blue.health_url: must not carry credentials", secret: "Sup3rS3cretPW"},
		{name: "upstream with space", src: edit(t, `"cepcomunicacion_app"`, `"cep app"`),
			line: 25, want: `"cep app" is not a valid upstream name`},
		{name: "upstream with semicolon", src: edit(t, `"cepcomunicacion_app"`, `"cep;include /etc/passwd"`),
			line: 25, want: "nginx.upstream: (value not shown) is not a valid upstream name"},
		{name: "upstream with brace", src: edit(t, `"cepcomunicacion_app"`, `"cep{server evil:80;}"`),
			line: 25, want: `"cep{server evil:80;}" is not a valid upstream name`},
		{name: "database with quote", src: edit(t, `database     = "cepcomunicacion"`, `database     = "cep\"; DROP DATABASE x; --"`),
			line: 29, want: "postgres.database: \"cep\\\"; DROP DATABASE x; --\" is not a name settle accepts"},
		{name: "database with semicolon", src: edit(t, `database     = "cepcomunicacion"`, `database     = "cep;drop"`),
			line: 29, want: `"cep;drop" is not a name settle accepts`},
		{name: "snapshot with slash", src: edit(t, `"cepcomunicacion_20251031_020000"`, `"backups/cep_20251031"`),
			line: 30, want: `"backups/cep_20251031" is not a valid snapshot ID`},
		{name: "snapshot with dotdot", src: edit(t, `"cepcomunicacion_20251031_020000"`, `"cep..x"`),
			line: 30, want: `"cep..x" is not a valid snapshot ID`},
		{name: "dsn_env holding a DSN", src: edit(t, `"SETTLE_PG_DSN"`, `"postgres://settle:Hunter2Secret@db:5432/cep"`),
			line: 32, want: "postgres.dsn_env: must name an environment variable", secret: "Hunter2Secret"},
		{name: "password_env holding a password", src: edit(t, `"REDIS_PASSWORD"`, `"p4ss!W0rd#x"`),
			line: 36, want: "redis.password_env: must name an environment variable", secret: "p4ss!W0rd"},
		{name: "DSN pasted as a quoted key", src: edit(t, "[redis]\n", "[redis]\n\"postgres://u:Hunter2Secret@db/cep\" = 1\n"),
			line: 35, want: "unknown key `(key not shown)` in [redis]", secret: "Hunter2Secret"},
		{name: "secret echoed by a bad escape", src: edit(t, `"SETTLE_PG_DSN"`, `"postgres://u:Hunter2Secret@db\x/cep"`),
			line: 32, want: "expected two hexadecimal digits", secret: "Hunter2Secret"},
		{name: "secret echoed by a bad bare value", src: edit(t, `"SETTLE_PG_DSN"`, `trueHunter2Secret`),
			line: 32, want: "expected value but found (value not shown)", secret: "Hunter2Secret"},
		{name: "key with newline escape", src: edit(t, "[redis]\n", "[redis]\n\"x\\ny.toml:1: forged\" = 1\n"),
			line: 35, want: "unknown key `\"x\\ny.toml:1: forged\"` in [redis]"},
		{name: "redis addr without port", src: edit(t, `"127.0.0.1:6379"`, `"127.0.0.1"`),
			line: 35, want: `redis.addr: "127.0.0.1" is not host:port`},
		{name: "redis addr with odd host", src: edit(t, `"127.0.0.1:6379"`, `"-oProxy=x:6379"`),
			line: 35, want: `"-oProxy=x:6379" is not host:port`},
		{name: "redis db 16", src: edit(t, "password_env", "db           = 16\npassword_env"),
			line: 36, want: "redis.db: must be between 0 and 15"},
		{name: "start_timeout not a duration", src: edit(t, "\n\n[app.blue]", "\nstart_timeout = \"soon\"\n\n[app.blue]"),
			line: 7, want: `app.start_timeout: "soon" is not a duration`},
		{name: "resync out of range", src: ex + "\n[agent]\nresync = \"0s\"\n",
			line: 40, want: `agent.resync: "0s" is out of range; use between 1s and 24h0m0s`},
		{name: "mode of unknown kind", src: ex + "\n[agent.modes]\nngnix = \"report\"\n",
			line: 40, want: "unknown resource kind `ngnix`; kinds: pm2, nginx, postgres, redis; did you mean `nginx`?"},
		{name: "DSN pasted as a mode kind", src: ex + "\n[agent.modes]\n\"postgres://u:Hunter2Secret@db\" = \"report\"\n",
			line: 40, want: "unknown resource kind `(key not shown)`", secret: "Hunter2Secret"},
		{name: "mode that is not a mode", src: ex + "\n[agent]\nmodes = { pm2 = \"dry-run\" }\n",
			line: 40, want: `agent.modes.pm2: "dry-run" is not one of "enforce", "report"`},
		{name: "unknown key in host suggests known_hosts", src: ex + "\n[host]\nssh = \"root@203.0.113.7\"\nknown_host = \"/root/.ssh/known_hosts\"\n",
			line: 41, want: "unknown key `known_host` in [host]; did you mean `known_hosts`?"},
		{name: "host without ssh", src: ex + "\n[host]\nidentity = \"/root/.ssh/id_ed25519\"\n",
			line: 39, want: "host.ssh: required in [host]"},
		{name: "host ssh without user", src: ex + "\n[host]\nssh = \"203.0.113.7:22\"\n",
			line: 40, want: `host.ssh: "203.0.113.7:22" names no user; write it as user@host or user@host:port`},
		{name: "host ssh port out of range", src: ex + "\n[host]\nssh = \"root@203.0.113.7:70000\"\n",
			line: 40, want: `host.ssh: "root@203.0.113.7:70000" has a port out of range`},
		{name: "host ssh user read as an option", src: ex + "\n[host]\nssh = \"-oProxyCommand=touch /tmp/pwned@vps\"\n",
			line: 40, want: "has a user name settle does not accept"},
		{name: "host ssh host with shell metacharacters", src: ex + "\n[host]\nssh = \"root@vps;touch /tmp/pwned\"\n",
			line: 40, want: "has a host settle does not accept"},
		{name: "host ssh host command substitution", src: ex + "\n[host]\nssh = \"root@$(id)\"\n",
			line: 40, want: `host.ssh: "root@$(id)" has a host settle does not accept`},
		{name: "host ssh bare ipv6", src: ex + "\n[host]\nssh = \"root@2001:db8::7\"\n",
			line: 40, want: "an IPv6 address goes in brackets"},
		{name: "host ssh with a password", src: ex + "\n[host]\nssh = \"root:Hunter2Secret@203.0.113.7\"\n",
			line: 40, want: "host.ssh: (value not shown) looks like it holds a password", secret: "Hunter2Secret"},
		{name: "host identity relative", src: ex + "\n[host]\nssh = \"root@vps\"\nidentity = \"id_ed25519\"\n",
			line: 41, want: `host.identity: "id_ed25519" is not an absolute path`},
		{name: "host known_hosts with quote breakout", src: ex + "\n[host]\nssh = \"root@vps\"\nknown_hosts = \"/tmp/k'; touch /tmp/pwned; '\"\n",
			line: 41, want: "host.known_hosts:"},
		{name: "host connect_timeout zero", src: ex + "\n[host]\nssh = \"root@vps\"\nconnect_timeout = \"0s\"\n",
			line: 41, want: `host.connect_timeout: "0s" is out of range; use between 1s and 5m0s`},
		{name: "host keepalive not a duration", src: ex + "\n[host]\nssh = \"root@vps\"\nkeepalive = \"often\"\n",
			line: 41, want: `host.keepalive: "often" is not a duration`},
		{name: "non-UTF-8 byte", src: edit(t, "cepcomunicacion_app", "cep\xffapp"),
			line: 25, want: "the file is not UTF-8 text"},
		{name: "NUL byte in a string", src: edit(t, "cepcomunicacion_app", "cep\x00app"),
			line: 25, want: "control characters"},
		{name: "NUL byte at the start", src: "\x00" + ex,
			line: 1, want: "NULL bytes"},
	}
}

func TestParseBad(t *testing.T) {
	for _, c := range badCases(t) {
		t.Run(c.name, func(t *testing.T) {
			ps := parseProblems(t, c.src)
			found := false
			for _, p := range ps {
				if p.File != "desired.toml" {
					t.Errorf("problem without the file name: %+v", p)
				}
				if p.Line == c.line && strings.Contains(p.String(), c.want) {
					found = true
				}
			}
			if !found {
				t.Errorf("no problem at line %d containing %q; got:\n%v", c.line, c.want, ps)
			}
			msg := ps.Error()
			if c.secret != "" && strings.Contains(msg, c.secret) {
				t.Errorf("the secret %q leaked:\n%s", c.secret, msg)
			}
			for i := 1; i < len(ps); i++ {
				if ps[i-1].Line > ps[i].Line {
					t.Errorf("problems not sorted by line:\n%s", msg)
				}
			}
			if n := strings.Count(msg, "\n") + 1; n != len(ps) {
				t.Errorf("%d problems printed as %d lines:\n%s", len(ps), n, msg)
			}
			golden(t, msg+"\n")
		})
	}
}

var slug = regexp.MustCompile(`[^a-z0-9]+`)

// golden compares the whole stderr of a case with testdata/bad/NAME.golden,
// so a change of wording anywhere shows up in review.
func golden(t *testing.T, got string) {
	t.Helper()
	path := filepath.Join("testdata", "bad", slug.ReplaceAllString(strings.ToLower(filepath.Base(t.Name())), "-")+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./desired -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("stderr differs from %s\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

func TestParseReportsEveryProblemInLineOrder(t *testing.T) {
	src := edit(t,
		`active  = "blue"`, `active  = "purple"`,
		`"/var/www/cepcomunicacion-blue"`, `"relative/dir"`,
		"port       = 3001", "port       = 0",
		`database     = "cepcomunicacion"`, `database     = "Cep-DB"`,
		`"127.0.0.1:6379"`, `"localhost"`,
	)
	got := parseProblems(t, src).Error()
	want := strings.Join([]string{
		`desired.toml:5: app.active: "purple" is not one of "blue", "green"`,
		`desired.toml:9: app.blue.dir: "relative/dir" is not an absolute path; write it starting with /`,
		`desired.toml:16: app.green.port: port 0 is out of range; use 1..65535`,
		`desired.toml:29: postgres.database: "Cep-DB" is not a name settle accepts; use lower-case letters, digits and '_' (at most 32)`,
		`desired.toml:35: redis.addr: "localhost" is not host:port (e.g. "127.0.0.1:6379")`,
	}, "\n")
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestParseGood(t *testing.T) {
	ex := example(t)
	cases := []struct {
		name  string
		src   string
		check func(*testing.T, *Desired)
	}{
		{name: "design example with LF", src: ex},
		{name: "design example with CRLF", src: strings.ReplaceAll(ex, "\n", "\r\n")},
		{name: "design example with a UTF-8 BOM", src: "\xef\xbb\xbf" + ex},
		{name: "BOM and CRLF", src: "\xef\xbb\xbf" + strings.ReplaceAll(ex, "\n", "\r\n")},
		{name: "optional sections absent", src: ex[:strings.Index(ex, "[postgres]")],
			check: func(t *testing.T, d *Desired) {
				if d.Postgres != nil || d.Redis != nil {
					t.Errorf("postgres %v redis %v, want both nil", d.Postgres, d.Redis)
				}
			}},
		{name: "host over ssh with defaults", src: ex + "\n[host]\nssh = \"deploy@vps.example.com\"\n",
			check: func(t *testing.T, d *Desired) {
				u, a := d.Host.Target()
				if u != "deploy" || a != "vps.example.com:22" || d.Host.ConnectTimeoutDur().String() != "8s" || d.Host.KeepaliveDur().String() != "15s" || d.Host.KnownHosts != "" {
					t.Errorf("host %+v: target %q %q", d.Host, u, a)
				}
			}},
		{name: "host over ssh in full", src: ex + "\n[host]\nssh = \"root@[::1]:2222\"\nknown_hosts = \"/home/op/.ssh/known_hosts\"\nidentity = \"/home/op/.ssh/id_ed25519\"\nconnect_timeout = \"3s\"\nkeepalive = \"5s\"\n",
			check: func(t *testing.T, d *Desired) {
				if u, a := d.Host.Target(); u != "root" || a != "[::1]:2222" || d.Host.ConnectTimeoutDur().String() != "3s" || d.Host.Identity != "/home/op/.ssh/id_ed25519" {
					t.Errorf("host %+v", d.Host)
				}
			}},
		{name: "inline tables", src: `schema = 1
[app]
name = "cep"
active = "green"
blue  = { dir = "/srv/blue", port = 3000, ecosystem = "eco.js", health_url = "http://127.0.0.1:3000/h" }
green = { dir = "/srv/green", port = 3001, ecosystem = "eco.js", health_url = "http://127.0.0.1:3001/h" }
[pm2]
home = "/home/deploy/.pm2"
[nginx]
upstream = "cep"
upstream_file = "/etc/nginx/conf.d/cep.conf"
[agent]
modes = { postgres = "report" }
`, check: func(t *testing.T, d *Desired) {
			if d.App.Green.Port != 3001 || d.ModeFor("postgres") != ModeReport || d.ModeFor("pm2") != ModeEnforce {
				t.Errorf("decoded %+v, modes %v", d.App, d.Agent.Modes)
			}
		}},
		{name: "dotted keys at the top level", src: `schema = 1
app.name = "cep"
app.active = "blue"
app.blue.dir = "/srv/blue"
app.blue.port = 3000
app.blue.ecosystem = "eco.js"
app.blue.health_url = "https://127.0.0.1:3000/h"
app.green.dir = "/srv/green"
app.green.port = 3001
app.green.ecosystem = "eco.js"
app.green.health_url = "http://[::1]:3001/h"
pm2.home = "/home/deploy/.pm2"
nginx.upstream = "cep"
nginx.upstream_file = "/etc/nginx/conf.d/cep.conf"
redis.addr = "[::1]:6379"
`, check: func(t *testing.T, d *Desired) {
			if d.App.Blue.Port != 3000 || d.Redis == nil || d.Redis.Addr != "[::1]:6379" {
				t.Errorf("decoded %+v redis %+v", d.App, d.Redis)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := Parse("desired.toml", []byte(c.src))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(d.Generation) || d.Path != "desired.toml" {
				t.Errorf("generation %q path %q", d.Generation, d.Path)
			}
			if d.App.Standby != StandbyRunning || d.StartTimeout().String() != "1m0s" {
				t.Errorf("defaults not applied: standby %q timeout %v", d.App.Standby, d.StartTimeout())
			}
			if c.check != nil {
				c.check(t, d)
			}
		})
	}
}

func TestGenerationIsTheHashOfTheBytes(t *testing.T) {
	ex := example(t)
	for _, src := range []string{ex, "\xef\xbb\xbf" + strings.ReplaceAll(ex, "\n", "\r\n"), ex + "# a comment\n"} {
		d, err := Parse("desired.toml", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		// The raw bytes, BOM and CR included: the generation names the file as stored.
		if sum := sha256.Sum256([]byte(src)); d.Generation != hex.EncodeToString(sum[:]) {
			t.Errorf("generation %s is not the sha256 of %.20q...", d.Generation, src)
		}
	}
}
