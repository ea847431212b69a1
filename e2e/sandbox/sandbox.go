// Package sandbox brings up real nginx, PM2, PostgreSQL 15 and Redis on
// loopback, all inside one directory and on ports picked at run time, so e2e
// tests (and humans) get an isolated copy of a blue-green VPS and can tear it
// down again without touching anything system-wide.
package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// Sandbox is the metadata of one running sandbox; DIR/sandbox.json holds it.
type Sandbox struct {
	Dir, DesiredPath, EnvPath                         string
	FrontURL                                          string // http://127.0.0.1:NGINXPORT/api/health
	NginxPort, BluePort, GreenPort, PGPort, RedisPort int
	NginxPrefix, NginxConf, UpstreamFile              string
	PM2Home                                           string
	AdminDSN, AppDSN                                  string // contain passwords
	RedisAddr, RedisPassword                          string
	PGBinDir, SnapshotDir, StateDir                   string
	AppSecret                                         string // the canary in the app's pm2 env
}

const (
	// SnapshotID is the first snapshot Up takes of the demo database.
	SnapshotID = "demo_initial"
	metaFile   = "sandbox.json"
)

// Up creates and starts a sandbox in dir (created if missing). Services start
// in parallel; on any error Up tears down whatever it started and returns the
// error. logf may be nil.
func Up(ctx context.Context, dir string, logf func(format string, args ...any)) (sb *Sandbox, err error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	start := time.Now()
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := prepareDir(dir); err != nil {
		return nil, err
	}
	// Refuse before arming the deferred Down: tearing down a live sandbox
	// because someone ran up twice would be a nasty surprise.
	for _, f := range []string{metaFile, "pg"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return nil, fmt.Errorf("sandbox: %s already holds a sandbox (%s); run down and remove it first", dir, f)
		}
	}
	defer func() {
		if err != nil {
			logf("sandbox: up failed, tearing down %s", dir)
			if derr := Down(dir); derr != nil {
				logf("sandbox: down after failed up: %v", derr)
			}
		}
	}()
	s, err := plan(dir)
	if err != nil {
		return nil, err
	}
	// Written first so Down can find ports and paths even if Up dies midway.
	if err := s.save(); err != nil {
		return nil, err
	}
	pgPW, appPW := secret(), secret()
	s.AdminDSN = pgDSN("settle_admin", pgPW, s.PGPort, "postgres")
	s.AppDSN = pgDSN("demo_app", appPW, s.PGPort, "demo")
	if err := s.save(); err != nil {
		return nil, err
	}

	steps := []struct {
		name string
		f    func(context.Context) error
	}{
		{"postgres", func(ctx context.Context) error { return s.upPostgres(ctx, pgPW, appPW) }},
		{"redis", s.upRedis},
		{"nginx", s.upNginx},
		{"pm2", s.upPM2},
		{"releases", s.writeReleases},
	}
	var wg sync.WaitGroup
	errs := make([]error, len(steps))
	for i, st := range steps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			if err := st.f(ctx); err != nil {
				errs[i] = fmt.Errorf("sandbox %s: %w", st.name, err)
				return
			}
			logf("sandbox: %s up in %s", st.name, time.Since(t0).Round(time.Millisecond))
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, redactErr(err, pgPW, appPW, s.RedisPassword, s.AppSecret)
	}
	if err := s.writeDesired(); err != nil {
		return nil, err
	}
	if err := s.writeEnv(); err != nil {
		return nil, err
	}
	logf("sandbox: up in %s: dir=%s front=%s", time.Since(start).Round(time.Millisecond), dir, s.FrontURL)
	return s, nil
}

// prepareDir makes dir and checks that user postgres can reach it: the data
// directory lives inside and the server runs unprivileged.
func prepareDir(dir string) error {
	// The path is spliced into nginx, redis, postgres and TOML files; a plain
	// charset keeps all of them safe without per-format quoting.
	for _, r := range dir {
		if !(r == '/' || r == '.' || r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return fmt.Errorf("sandbox: dir %q: only letters, digits and . _ - / are allowed", dir)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return nil
	}
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("sandbox: %s is not traversable by others (mode %v); user postgres needs to reach %s: use a dir under /tmp", p, fi.Mode().Perm(), dir)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// plan picks ports, secrets and paths; it starts nothing.
func plan(dir string) (*Sandbox, error) {
	ports, err := freePorts(5)
	if err != nil {
		return nil, err
	}
	binDir, err := pgBinDir()
	if err != nil {
		return nil, err
	}
	s := &Sandbox{
		Dir:           dir,
		DesiredPath:   filepath.Join(dir, "desired.toml"),
		EnvPath:       filepath.Join(dir, "sandbox.env"),
		NginxPort:     ports[0],
		BluePort:      ports[1],
		GreenPort:     ports[2],
		PGPort:        ports[3],
		RedisPort:     ports[4],
		NginxPrefix:   filepath.Join(dir, "nginx"),
		PM2Home:       filepath.Join(dir, "pm2"),
		RedisPassword: secret(),
		PGBinDir:      binDir,
		SnapshotDir:   filepath.Join(dir, "snapshots"),
		StateDir:      filepath.Join(dir, "state"),
		AppSecret:     "sandbox-canary-" + secret(),
	}
	s.NginxConf = filepath.Join(s.NginxPrefix, "nginx.conf")
	s.UpstreamFile = filepath.Join(s.NginxPrefix, "conf.d", "upstream.conf")
	s.FrontURL = fmt.Sprintf("http://127.0.0.1:%d/api/health", s.NginxPort)
	s.RedisAddr = "127.0.0.1:" + strconv.Itoa(s.RedisPort)
	for _, d := range []string{s.SnapshotDir, s.StateDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *Sandbox) save() error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return writeFile(filepath.Join(s.Dir, metaFile), b, 0o600)
}

// Load re-reads the metadata of a sandbox that Up wrote into dir.
func Load(dir string) (*Sandbox, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(dir, metaFile))
	if err != nil {
		return nil, fmt.Errorf("sandbox: load: %w", err)
	}
	var s Sandbox
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("sandbox: load %s: %w", metaFile, err)
	}
	return &s, nil
}

// writeFile writes atomically (temp + rename) with the given mode so a reader
// never sees half a file and secrets never exist with a wider mode.
func writeFile(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

type redactedError struct{ msg string }

func (e redactedError) Error() string { return e.msg }

func redactErr(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	return redactedError{redact(err.Error(), secrets...)}
}
