package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"
)

func (s *Sandbox) pm2PidFile() string { return filepath.Join(s.PM2Home, "pm2.pid") }

// PM2Env is the environment for a pm2 command aimed at this sandbox's daemon.
func (s *Sandbox) PM2Env() []string { return []string{"PM2_HOME=" + s.PM2Home} }

func (s *Sandbox) upPM2(ctx context.Context) error {
	if err := os.MkdirAll(s.PM2Home, 0o700); err != nil {
		return err
	}
	// ping starts the daemon when none is running for this PM2_HOME.
	_, err := run(ctx, command{args: []string{"pm2", "ping"}, env: s.PM2Env(), timeout: 20 * time.Second})
	return err
}

// DemoAppSource finds e2e/demoapp: $SANDBOX_DEMOAPP, else next to this source
// file, else by walking up from the working directory to the module root.
func DemoAppSource() (string, error) {
	var cands []string
	if v := os.Getenv("SANDBOX_DEMOAPP"); v != "" {
		cands = append(cands, v)
	}
	if _, f, _, ok := runtime.Caller(0); ok {
		cands = append(cands, filepath.Join(filepath.Dir(f), "..", "demoapp"))
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			cands = append(cands, filepath.Join(d, "e2e", "demoapp"))
			if d == filepath.Dir(d) {
				break
			}
		}
	}
	for _, c := range cands {
		if _, err := os.Stat(filepath.Join(c, "server.js")); err == nil {
			return filepath.Abs(c)
		}
	}
	return "", fmt.Errorf("demo app source not found (set SANDBOX_DEMOAPP)")
}

// writeReleases lays out the blue and green release dirs. node_modules is a
// symlink to the source's, installed once by scripts/install-deps.
func (s *Sandbox) writeReleases(context.Context) error {
	src, err := DemoAppSource()
	if err != nil {
		return err
	}
	nm := filepath.Join(src, "node_modules")
	if _, err := os.Stat(filepath.Join(nm, "pg")); err != nil {
		return fmt.Errorf("%s has no pg module: run scripts/install-deps (npm ci)", nm)
	}
	for _, color := range []string{"blue", "green"} {
		d := s.releaseDir(color)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		for _, f := range []string{"server.js", "package.json", "package-lock.json"} {
			b, err := os.ReadFile(filepath.Join(src, f))
			if err != nil {
				return err
			}
			if err := writeFile(filepath.Join(d, f), b, 0o644); err != nil {
				return err
			}
		}
		link := filepath.Join(d, "node_modules")
		os.Remove(link)
		if err := os.Symlink(nm, link); err != nil {
			return err
		}
		if err := writeFile(filepath.Join(d, "ecosystem.config.js"), s.ecosystem(color), 0o600); err != nil {
			return err
		}
	}
	return nil
}

func (s *Sandbox) ecosystem(color string) []byte {
	port := s.BluePort
	if color == "green" {
		port = s.GreenPort
	}
	app := map[string]any{
		"name":           "demo-" + color,
		"script":         "server.js",
		"cwd":            s.releaseDir(color),
		"wait_ready":     true,
		"listen_timeout": 8000,
		"kill_timeout":   3000,
		"min_uptime":     2000,
		"autorestart":    true,
		"max_restarts":   3,
		"env": map[string]string{
			"PORT":         fmt.Sprint(port),
			"COLOR":        color,
			"DATABASE_URL": s.AppDSN,
			"APP_SECRET":   s.AppSecret,
			"NODE_ENV":     "production",
		},
	}
	b, _ := json.MarshalIndent(map[string]any{"apps": []any{app}}, "", "  ")
	// JSON is valid JavaScript; the file holds secrets, hence mode 0600.
	return []byte("// Written by the settle sandbox (app demo, color " + color + ").\nmodule.exports = " + string(b) + ";\n")
}
