package desired

import (
	"errors"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Character sets for every value that reaches a command line, a file or SQL.
var (
	appNameRe  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,47}$`)
	upstreamRe = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$`)
	// Database names stay short enough that settle's kept and scratch names
	// (database + suffix) fit PostgreSQL's 63-byte limit.
	databaseRe = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,31}$`)
	SnapshotRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$`)
	envNameRe  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
	prefixRe   = regexp.MustCompile(`^[A-Za-z0-9_:.{}-]{1,128}$`)
	relPathRe  = regexp.MustCompile(`^[A-Za-z0-9_./@+-]+$`)
	// Absolute paths reach argv and may be written into nginx config, so
	// whitespace, quotes, ';', '{', '}', '$' and control characters stay out.
	absPathRe = regexp.MustCompile(`^/[A-Za-z0-9_./@+,:~-]*$`)
	hostRe    = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$`)
	digitsRe  = regexp.MustCompile(`^[0-9]{1,5}$`)
	// POSIX portable user names; a leading '-' would read as an ssh option.
	sshUserRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,31}$`)
)

// ResourceKinds are the resource kinds a per-resource mode can name.
var ResourceKinds = []string{"pm2", "nginx", "postgres", "redis"}

type adder func(key, format string, args ...any)

// validate checks every rule that needs no I/O and reports each failure.
func validate(d *Desired, md toml.MetaData, add adder) {
	// A missing section is one problem, not one per key; the sections that
	// are there are still checked, so every problem shows at once.
	has := map[string]bool{}
	for _, sec := range []string{"app", "app.blue", "app.green", "pm2", "nginx"} {
		has[sec] = md.IsDefined(strings.Split(sec, ".")...)
		if !has[sec] {
			add("", "missing section [%s]", sec)
		}
	}
	if has["app"] {
		validateApp(d, has, add)
	}
	if has["pm2"] {
		absPath(add, "pm2.home", d.PM2.Home, true)
		binary(add, "pm2.bin", d.PM2.Bin)
	}
	if has["nginx"] {
		validateNginx(&d.Nginx, add)
	}
	if p := d.Postgres; p != nil {
		postgres(add, p)
	}
	if r := d.Redis; r != nil {
		redis(add, r, d.Postgres != nil)
	}
	// The TOML library leaves a map destination empty, without an error,
	// when the value is not a table.
	if md.IsDefined("agent", "modes") && md.Type("agent", "modes") != "Hash" {
		add("agent.modes", "must be a table of resource kind to mode, like { postgres = \"report\" }")
	}
	agent(add, &d.Agent)
	if h := d.Host; h != nil {
		host(add, h)
	}
}

func validateApp(d *Desired, has map[string]bool, add adder) {
	a := &d.App
	if a.Name == "" {
		add("app.name", "required; the PM2 processes are named <name>-blue and <name>-green")
	} else if !appNameRe.MatchString(a.Name) {
		add("app.name", "%s is not a valid app name; use letters, digits, '-' and '_' (at most 48)", shown(a.Name))
	}
	oneOf(add, "app.active", a.Active, Blue, Green)
	oneOf(add, "app.standby", a.Standby, StandbyRunning, StandbyStopped)
	duration(add, "app.start_timeout", a.StartTimeout, time.Second, time.Hour)
	if has["app.blue"] {
		color(add, "app.blue", &a.Blue)
	}
	if has["app.green"] {
		color(add, "app.green", &a.Green)
	}
	if a.Blue.Port != 0 && a.Blue.Port == a.Green.Port {
		add("app.green.port", "blue and green both use port %d; each color needs its own port", a.Green.Port)
	}
}

func validateNginx(n *Nginx, add adder) {
	if n.Upstream == "" {
		add("nginx.upstream", "required; the name of the upstream block settle owns")
	} else if !upstreamRe.MatchString(n.Upstream) {
		add("nginx.upstream", "%s is not a valid upstream name; use letters, digits, '-' and '_'", shown(n.Upstream))
	}
	absPath(add, "nginx.upstream_file", n.UpstreamFile, true)
	absPath(add, "nginx.config", n.Config, true)
	absPath(add, "nginx.prefix", n.Prefix, false)
	absPath(add, "nginx.error_log", n.ErrorLog, false)
	absPath(add, "nginx.access_log", n.AccessLog, false)
	binary(add, "nginx.bin", n.Bin)
	if n.VerifyURL != "" {
		httpURL(add, "nginx.verify_url", n.VerifyURL)
	}
	if n.UpstreamFile != "" && n.UpstreamFile == n.Config {
		add("nginx.upstream_file", "must not be the main nginx config; settle rewrites this file whole")
	}
}

func host(add adder, h *Host) {
	if h.SSH == "" {
		add("host.ssh", "required in [host]; where to connect, like \"deploy@203.0.113.7:22\" (remove [host] to manage this machine)")
	} else if _, _, err := ParseSSH(h.SSH); err != nil {
		v := shown(h.SSH)
		if u, _, ok := strings.Cut(h.SSH, "@"); ok && strings.Contains(u, ":") {
			v = "(value not shown)" // user:password@host
		}
		add("host.ssh", "%s %s", v, err)
	}
	absPath(add, "host.known_hosts", h.KnownHosts, false)
	absPath(add, "host.identity", h.Identity, false)
	duration(add, "host.connect_timeout", h.ConnectTimeout, time.Second, 5*time.Minute)
	duration(add, "host.keepalive", h.Keepalive, time.Second, time.Hour)
}

// ParseSSH splits "user@host[:port]" (an IPv6 host in brackets) into user
// and host:port. Its errors complete a sentence that starts with the value.
func ParseSSH(s string) (user, addr string, err error) {
	user, hp, ok := strings.Cut(s, "@")
	switch {
	case looksSecret(s) || ok && strings.Contains(user, ":"):
		return "", "", errors.New("looks like it holds a password; write only user@host:port and keep keys in host.identity or ssh-agent")
	case !ok:
		return "", "", errors.New("names no user; write it as user@host or user@host:port")
	case !sshUserRe.MatchString(user):
		return "", "", errors.New("has a user name settle does not accept; use letters, digits, '.', '-' and '_', not starting with '-'")
	}
	h, p := hp, DefaultSSHPort
	if strings.HasSuffix(hp, "]") {
		h = strings.TrimPrefix(strings.TrimSuffix(hp, "]"), "[")
	} else if strings.Contains(hp, ":") {
		if h, p, err = net.SplitHostPort(hp); err != nil {
			return "", "", errors.New("is not user@host:port (an IPv6 address goes in brackets, like root@[2001:db8::7]:22)")
		}
	}
	ip := net.ParseIP(h)
	v6 := strings.Contains(h, ":")
	if ip == nil && (v6 || !hostRe.MatchString(h)) || v6 != strings.HasPrefix(hp, "[") {
		return "", "", errors.New("has a host settle does not accept; use a DNS name or an IP address (IPv6 in brackets)")
	}
	n, perr := strconv.Atoi(p)
	if !digitsRe.MatchString(p) || perr != nil || n < 1 || n > 65535 {
		return "", "", errors.New("has a port out of range; use 1..65535")
	}
	return user, net.JoinHostPort(h, p), nil
}

func color(add adder, sec string, c *Color) {
	absPath(add, sec+".dir", c.Dir, true)
	port(add, sec+".port", c.Port)
	switch {
	case c.Ecosystem == "":
		add(sec+".ecosystem", "required; the PM2 ecosystem file, relative to dir (e.g. \"ecosystem.config.js\")")
	default:
		relPath(add, sec+".ecosystem", c.Ecosystem)
	}
	if c.HealthURL == "" {
		add(sec+".health_url", "required; an http URL that answers 200 when this color is healthy")
	} else {
		httpURL(add, sec+".health_url", c.HealthURL)
		healthPort(add, sec, c)
	}
	if c.EnvFile != "" {
		relPath(add, sec+".env_file", c.EnvFile)
	}
}

func postgres(add adder, p *Postgres) {
	switch {
	case p.Database == "":
		add("postgres.database", "required; the live database's name")
	case !databaseRe.MatchString(p.Database):
		add("postgres.database", "%s is not a name settle accepts; use lower-case letters, digits and '_' (at most 32)", shown(p.Database))
	}
	switch {
	case p.Snapshot == "":
		add("postgres.snapshot", "required; the ID of the snapshot that must be live (its file name in snapshot_dir without extension)")
	case !SnapshotRe.MatchString(p.Snapshot) || strings.Contains(p.Snapshot, ".."):
		add("postgres.snapshot", "%s is not a valid snapshot ID; use letters, digits, '.', '-' and '_', no path", shown(p.Snapshot))
	}
	absPath(add, "postgres.snapshot_dir", p.SnapshotDir, true)
	envName(add, "postgres.dsn_env", p.DSNEnv, true, "SETTLE_PG_DSN")
	absPath(add, "postgres.bin_dir", p.BinDir, false)
	if p.RestoreSerial < 0 {
		add("postgres.restore_serial", "must be 0 or more; raise it by one to restore the same snapshot again")
	}
	// The replaced database holds every write since the snapshot: an hour
	// at least, so a typo ("168s") cannot drop it on the next pass.
	duration(add, "postgres.keep_replaced", p.KeepReplaced, time.Hour, 10*365*24*time.Hour)
	if p.Jobs < 1 || p.Jobs > 64 {
		add("postgres.jobs", "must be between 1 and 64")
	}
}

func redis(add adder, r *Redis, havePostgres bool) {
	if r.Addr == "" {
		add("redis.addr", "required; host:port of the Redis server")
	} else {
		hostPort(add, "redis.addr", r.Addr)
	}
	if r.DB < 0 || r.DB > 15 {
		add("redis.db", "must be between 0 and 15")
	}
	envName(add, "redis.password_env", r.PasswordEnv, false, "REDIS_PASSWORD")
	if r.KeyPrefix != "" && !prefixRe.MatchString(r.KeyPrefix) {
		add("redis.key_prefix", "%s may hold only letters, digits and _:.{}- (no glob characters)", shown(r.KeyPrefix))
	}
	if r.FlushOnSnapshotChange && !havePostgres {
		add("redis.flush_on_snapshot_change", "needs a [postgres] section: the cache is flushed when postgres.snapshot changes")
	}
}

func agent(add adder, a *Agent) {
	absPath(add, "agent.state_dir", a.StateDir, true)
	oneOf(add, "agent.mode", a.Mode, ModeEnforce, ModeReport)
	for k, m := range a.Modes {
		key := "agent.modes." + k
		if !contains(ResourceKinds, k) {
			msg := "unknown resource kind `" + safeKey(toml.Key{k}.String()) + "`; kinds: " + strings.Join(ResourceKinds, ", ")
			if s := nearest(k, ResourceKinds); s != "" {
				msg += "; did you mean `" + s + "`?"
			}
			add(key, "%s", msg)
			continue
		}
		oneOf(add, key, m, ModeEnforce, ModeReport)
	}
	duration(add, "agent.resync", a.Resync, time.Second, 24*time.Hour)
	duration(add, "agent.debounce", a.Debounce, 0, 10*time.Second)
	hostPort(add, "agent.listen", a.Listen)
	envName(add, "agent.notify_url_env", a.NotifyEnv, false, "SETTLE_WEBHOOK_URL")
	duration(add, "agent.analysis_window", a.AnalysisWindow, 0, time.Hour)
	duration(add, "agent.max_latency", a.MaxLatency, time.Millisecond, time.Hour)
	if a.MaxErrorRate <= 0 || a.MaxErrorRate > 1 {
		add("agent.max_error_rate", "must be a fraction in (0, 1], e.g. 0.25 for 25 %%")
	}
}

func oneOf(add adder, key, v string, allowed ...string) {
	if contains(allowed, v) {
		return
	}
	if v == "" {
		add(key, "required; one of %s", quoteAll(allowed))
		return
	}
	msg := shown(v) + " is not one of " + quoteAll(allowed)
	if s := nearest(strings.ToLower(v), allowed); s != "" {
		msg += "; did you mean \"" + s + "\"?"
	}
	add(key, "%s", msg)
}

func quoteAll(vs []string) string {
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = strconv.Quote(v)
	}
	return strings.Join(q, ", ")
}

func contains(vs []string, v string) bool {
	for _, x := range vs {
		if x == v {
			return true
		}
	}
	return false
}

func port(add adder, key string, p int) {
	if p < 1 || p > 65535 {
		add(key, "port %d is out of range; use 1..65535", p)
	}
}

func absPath(add adder, key, p string, required bool) {
	switch {
	case p == "" && required:
		add(key, "required; an absolute path")
	case p == "":
	case looksSecret(p):
		add(key, "does not look like a path; the value looks like a secret and is not shown")
	case !filepath.IsAbs(p):
		add(key, "%s is not an absolute path; write it starting with /", shown(p))
	case hasDotDot(p):
		add(key, "%s must not contain '..'", shown(p))
	case !absPathRe.MatchString(p):
		add(key, "%s may hold only letters, digits and /._-@+,:~ (no spaces, quotes or ;{}$)", shown(p))
	}
}

func relPath(add adder, key, p string) {
	switch {
	case filepath.IsAbs(p):
		add(key, "%s must be relative to the color's dir", shown(p))
	case hasDotDot(p) || !relPathRe.MatchString(p):
		add(key, "%s must be a plain relative path (letters, digits, ./_-@+, no '..')", shown(p))
	case strings.HasPrefix(p, "-") || strings.Contains(p, "/-"):
		// The path is an argument to pm2; a leading '-' would be an option.
		add(key, "%s must not start a path element with '-'", shown(p))
	}
}

func hasDotDot(p string) bool {
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return true
		}
	}
	return false
}

func binary(add adder, key, b string) {
	if b == "" || filepath.IsAbs(b) && !hasDotDot(b) && absPathRe.MatchString(b) ||
		relPathRe.MatchString(b) && !strings.ContainsAny(b[:1], "-.") && !strings.Contains(b, "/") {
		return
	}
	add(key, "%s must be a program name found on PATH or an absolute path", shown(b))
}

func httpURL(add adder, key, raw string) {
	if looksSecret(raw) {
		add(key, "must not carry credentials; the value looks like a secret and is not shown")
		return
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		add(key, "%s is not an http(s) URL like \"http://127.0.0.1:3000/api/health\"", shown(raw))
	}
}

// healthPort catches the slip that would send traffic to a dead port: a
// health URL on this machine that checks another port than the one nginx
// will be pointed at. The check would pass and the site would answer 502.
func healthPort(add adder, sec string, c *Color) {
	u, err := url.Parse(c.HealthURL)
	if err != nil || c.Port < 1 || c.Port > 65535 || (u.Scheme != "http" && u.Scheme != "https") {
		return // reported on its own
	}
	h := u.Hostname()
	if h != "127.0.0.1" && h != "localhost" && h != "::1" {
		return
	}
	p := u.Port()
	if p == "" {
		p = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	if p != strconv.Itoa(c.Port) {
		add(sec+".health_url", "checks port %s but %s.port is %d: nginx would be pointed at a port the health check never saw; make them match", p, sec, c.Port)
	}
}

func hostPort(add adder, key, v string) {
	if v == "" {
		return
	}
	if looksSecret(v) {
		add(key, "is not host:port; the value looks like a secret and is not shown")
		return
	}
	h, p, err := net.SplitHostPort(v)
	n, perr := strconv.Atoi(p)
	okHost := hostRe.MatchString(h) || net.ParseIP(h) != nil
	if err != nil || !okHost || perr != nil || !digitsRe.MatchString(p) || n < 1 || n > 65535 {
		add(key, "%s is not host:port (e.g. \"127.0.0.1:6379\")", shown(v))
	}
}

func envName(add adder, key, v string, required bool, example string) {
	switch {
	case v == "" && required:
		add(key, "required; the name of the environment variable that holds the secret (e.g. %q)", example)
	case v == "":
	case !envNameRe.MatchString(v):
		add(key, "must name an environment variable (like %q), not hold the value itself; the value is not shown", example)
	}
}

func duration(add adder, key, v string, lo, hi time.Duration) {
	if v == "" {
		return
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		add(key, "%s is not a duration; write it like \"30s\", \"5m\" or \"168h\"", shown(v))
		return
	}
	if d < lo || d > hi {
		add(key, "%s is out of range; use between %s and %s", shown(v), lo, hi)
	}
}
