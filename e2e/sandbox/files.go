package sandbox

import (
	"fmt"
	"path/filepath"
	"strings"
)

// desiredTmpl is schema 1 of desired.toml as the settle agent reads it.
const desiredTmpl = `schema = 1

[app]
name    = "demo"
active  = "blue"
standby = "running"

[app.blue]
dir        = %[1]q
port       = %[2]d
ecosystem  = "ecosystem.config.js"
health_url = "http://127.0.0.1:%[2]d/api/health"

[app.green]
dir        = %[3]q
port       = %[4]d
ecosystem  = "ecosystem.config.js"
health_url = "http://127.0.0.1:%[4]d/api/health"

[pm2]
home = %[5]q

[nginx]
config        = %[6]q
upstream      = "app_upstream"
upstream_file = %[7]q
verify_url    = %[8]q
prefix        = %[9]q

[postgres]
database     = "demo"
snapshot     = "demo_initial"
snapshot_dir = %[10]q
dsn_env      = "SETTLE_PG_DSN"
bin_dir      = %[11]q

[redis]
addr         = %[12]q
password_env = "REDIS_PASSWORD"
flush_on_snapshot_change = true

[agent]
state_dir = %[13]q
`

func (s *Sandbox) releaseDir(color string) string {
	return filepath.Join(s.Dir, "releases", color)
}

func (s *Sandbox) writeDesired() error {
	// Paths come from filepath.Abs and contain no quotes or backslashes in
	// practice; %q yields a valid TOML basic string for plain paths.
	body := fmt.Sprintf(desiredTmpl,
		s.releaseDir("blue"), s.BluePort, s.releaseDir("green"), s.GreenPort,
		s.PM2Home, s.NginxConf, s.UpstreamFile, s.FrontURL, s.NginxPrefix,
		s.SnapshotDir, s.PGBinDir, s.RedisAddr, s.StateDir)
	return writeFile(s.DesiredPath, []byte(body), 0o644)
}

// envPairs is the single source for both Env and sandbox.env.
func (s *Sandbox) envPairs() [][2]string {
	return [][2]string{
		{"SANDBOX_DIR", s.Dir},
		{"SETTLE_DESIRED", s.DesiredPath},
		{"SANDBOX_FRONT_URL", s.FrontURL},
		{"SETTLE_PG_DSN", s.AdminDSN},
		{"APP_PG_DSN", s.AppDSN},
		{"REDIS_ADDR", s.RedisAddr},
		{"REDIS_PASSWORD", s.RedisPassword},
		{"PM2_HOME", s.PM2Home},
		{"NGINX_PREFIX", s.NginxPrefix},
	}
}

// Env returns the sandbox's variables as KEY=VALUE lines, the same set as
// sandbox.env; append them to os.Environ() for a child process.
func (s *Sandbox) Env() []string {
	var out []string
	for _, kv := range s.envPairs() {
		out = append(out, kv[0]+"="+kv[1])
	}
	return out
}

func (s *Sandbox) writeEnv() error {
	var b strings.Builder
	b.WriteString("# settle e2e sandbox; source me. Contains secrets.\n")
	for _, kv := range s.envPairs() {
		fmt.Fprintf(&b, "export %s=%s\n", kv[0], shellQuote(kv[1]))
	}
	return writeFile(s.EnvPath, []byte(b.String()), 0o600)
}

func shellQuote(v string) string {
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}
