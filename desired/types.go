// Package desired loads, strictly decodes and validates the operator's
// desired-state file (schema 1) and computes its generation.
package desired

import "time"

// Colors a release can have.
const (
	Blue  = "blue"
	Green = "green"
)

// Standby modes for the color that does not serve traffic.
const (
	StandbyRunning = "running"
	StandbyStopped = "stopped"
)

// Agent modes.
const (
	ModeEnforce = "enforce"
	ModeReport  = "report"
)

// Desired is schema 1 of desired.toml. Optional sections are pointers so
// that "absent" and "present but empty" stay distinguishable.
type Desired struct {
	Schema   int       `toml:"schema"`
	App      App       `toml:"app"`
	PM2      PM2       `toml:"pm2"`
	Nginx    Nginx     `toml:"nginx"`
	Postgres *Postgres `toml:"postgres"`
	Redis    *Redis    `toml:"redis"`
	Agent    Agent     `toml:"agent"`
	Host     *Host     `toml:"host"` // absent: the machine settle runs on

	// Filled by Load, not by the operator.
	Path       string    `toml:"-"`
	Generation string    `toml:"-"` // sha256 of the file's bytes, hex
	Git        GitInfo   `toml:"-"`
	LoadedAt   time.Time `toml:"-"`
	Raw        []byte    `toml:"-"` // the bytes the generation is the hash of
}

// App describes the blue-green pair.
type App struct {
	Name         string `toml:"name"`
	Active       string `toml:"active"`
	Standby      string `toml:"standby"`
	StartTimeout string `toml:"start_timeout"` // how long a color may take to become healthy
	Blue         Color  `toml:"blue"`
	Green        Color  `toml:"green"`
}

// Color is one release directory and its PM2 process.
type Color struct {
	Dir       string `toml:"dir"`
	Port      int    `toml:"port"`
	Ecosystem string `toml:"ecosystem"`
	HealthURL string `toml:"health_url"`
	EnvFile   string `toml:"env_file"`
}

// PM2 names the daemon that runs the app.
type PM2 struct {
	Home string `toml:"home"`
	Bin  string `toml:"bin"`
}

// Nginx names the upstream block settle owns and how to test and reload.
type Nginx struct {
	Config       string `toml:"config"`
	Prefix       string `toml:"prefix"` // nginx -p, for non-system installs
	Upstream     string `toml:"upstream"`
	UpstreamFile string `toml:"upstream_file"`
	Bin          string `toml:"bin"`
	VerifyURL    string `toml:"verify_url"` // a URL through nginx whose answer names the color
	ErrorLog     string `toml:"error_log"`
	AccessLog    string `toml:"access_log"`
}

// Postgres names the live database and the snapshot that must be live in it.
type Postgres struct {
	Database    string `toml:"database"`
	Snapshot    string `toml:"snapshot"`
	SnapshotDir string `toml:"snapshot_dir"`
	DSNEnv      string `toml:"dsn_env"`
	BinDir      string `toml:"bin_dir"`
	// RestoreSerial says "restore again": bumping it re-restores the same
	// snapshot, since the agent is level-triggered and cannot see a wish twice.
	RestoreSerial int    `toml:"restore_serial"`
	KeepReplaced  string `toml:"keep_replaced"` // retention of swapped-out databases
	NoOwner       bool   `toml:"no_owner"`      // restore without original ownership
	Jobs          int    `toml:"jobs"`          // pg_restore -j
}

// Redis names the cache that belongs to the live snapshot.
type Redis struct {
	Addr                  string `toml:"addr"`
	DB                    int    `toml:"db"`
	PasswordEnv           string `toml:"password_env"`
	FlushOnSnapshotChange bool   `toml:"flush_on_snapshot_change"`
	KeyPrefix             string `toml:"key_prefix"` // flush only these keys instead of the whole db
}

// Agent configures the long-running loop.
type Agent struct {
	StateDir  string            `toml:"state_dir"`
	Mode      string            `toml:"mode"`
	Modes     map[string]string `toml:"modes"` // per resource kind: pm2, nginx, postgres, redis
	Resync    string            `toml:"resync"`
	Debounce  string            `toml:"debounce"`
	Listen    string            `toml:"listen"`
	NotifyEnv string            `toml:"notify_url_env"`
	// AnalysisWindow, when set, watches the new color's traffic through
	// nginx for this long after a switch; a color that breaks the
	// thresholds is held back and the last good generation served.
	AnalysisWindow string  `toml:"analysis_window"`
	MaxErrorRate   float64 `toml:"max_error_rate"` // default 0.25
	MaxLatency     string  `toml:"max_latency"`    // p99, default "5s"
}

// Host is the machine the managed systems run on, reached over SSH. The
// state dir (journal, status, lock) stays where settle runs.
type Host struct {
	SSH            string `toml:"ssh"`         // user@host[:port]
	KnownHosts     string `toml:"known_hosts"` // default ~/.ssh/known_hosts, resolved at use
	Identity       string `toml:"identity"`    // private key; absent: the agent at SSH_AUTH_SOCK
	ConnectTimeout string `toml:"connect_timeout"`
	Keepalive      string `toml:"keepalive"`
}

// GitInfo records where the file came from.
type GitInfo struct {
	Commit string `json:"commit,omitempty"`
	Dirty  bool   `json:"dirty,omitempty"`
}

// Color returns the named color's release.
func (a *App) Color(name string) Color {
	if name == Green {
		return a.Green
	}
	return a.Blue
}

// Other returns the color that is not name.
func Other(name string) string {
	if name == Green {
		return Blue
	}
	return Green
}

// ProcessName is the PM2 process name for a color.
func (a *App) ProcessName(color string) string { return a.Name + "-" + color }

// Defaults applied before validation, so validation sees the final values.
const (
	DefaultNginxConfig  = "/etc/nginx/nginx.conf"
	DefaultStartTimeout = "60s"
	DefaultResync       = "30s"
	DefaultDebounce     = "25ms"
	DefaultKeepReplaced = "168h"
	DefaultStateDir     = "/var/lib/settle"
	DefaultListen       = "127.0.0.1:9813"
	DefaultSSHPort      = "22"
	DefaultConnect      = "8s"
	DefaultKeepalive    = "15s"
)

func (d *Desired) applyDefaults() {
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&d.App.Standby, StandbyRunning)
	def(&d.App.StartTimeout, DefaultStartTimeout)
	def(&d.Nginx.Config, DefaultNginxConfig)
	def(&d.Nginx.Bin, "nginx")
	def(&d.PM2.Bin, "pm2")
	def(&d.Agent.Mode, ModeEnforce)
	def(&d.Agent.Resync, DefaultResync)
	def(&d.Agent.Debounce, DefaultDebounce)
	def(&d.Agent.StateDir, DefaultStateDir)
	def(&d.Agent.Listen, DefaultListen)
	def(&d.Agent.MaxLatency, "5s")
	if d.Agent.MaxErrorRate == 0 {
		d.Agent.MaxErrorRate = 0.25
	}
	if h := d.Host; h != nil {
		def(&h.ConnectTimeout, DefaultConnect)
		def(&h.Keepalive, DefaultKeepalive)
	}
	if p := d.Postgres; p != nil {
		def(&p.KeepReplaced, DefaultKeepReplaced)
		if p.Jobs == 0 {
			p.Jobs = 2
		}
	}
}

// ModeFor is the agent mode for one resource kind.
func (d *Desired) ModeFor(kind string) string {
	if m, ok := d.Agent.Modes[kind]; ok {
		return m
	}
	return d.Agent.Mode
}

// Durations parsed once validation has proved they parse.
func (d *Desired) StartTimeout() time.Duration { return mustDur(d.App.StartTimeout) }
func (d *Desired) Resync() time.Duration       { return mustDur(d.Agent.Resync) }
func (d *Desired) Debounce() time.Duration     { return mustDur(d.Agent.Debounce) }
func (d *Desired) AnalysisWindow() time.Duration {
	return mustDur(d.Agent.AnalysisWindow)
}
func (d *Desired) MaxLatency() time.Duration { return mustDur(d.Agent.MaxLatency) }

// ConnectTimeout and KeepaliveInterval of a validated [host].
func (h *Host) ConnectTimeoutDur() time.Duration { return mustDur(h.ConnectTimeout) }
func (h *Host) KeepaliveDur() time.Duration      { return mustDur(h.Keepalive) }

// Target splits a validated host.ssh into user and host:port, with the
// default port when none is written.
func (h *Host) Target() (user, addr string) {
	user, addr, _ = ParseSSH(h.SSH)
	return user, addr
}

func mustDur(s string) time.Duration {
	v, _ := time.ParseDuration(s)
	return v
}
