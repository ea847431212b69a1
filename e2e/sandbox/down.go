package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Down stops everything Up started in dir, by pid first and then by scanning
// /proc for any process still tied to dir. It is idempotent and works after a
// half-finished Up or a crashed test. It does not delete dir.
func Down(dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Paths derive from dir alone, so a missing sandbox.json (Up died
	// early) still lets us find every pid file.
	s := &Sandbox{Dir: dir, NginxPrefix: filepath.Join(dir, "nginx"), PM2Home: filepath.Join(dir, "pm2")}
	if l, err := Load(dir); err == nil {
		s.PGBinDir = l.PGBinDir
	}
	if s.PGBinDir == "" {
		s.PGBinDir, _ = pgBinDir()
	}
	var wg sync.WaitGroup
	errs := make([]error, 5)
	for i, f := range []func(context.Context) error{s.downPM2, s.downNginx, s.downPostgres, s.downRedis, s.downSSHD} {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = f(ctx) }()
	}
	wg.Wait()
	left := reap(dir)
	if len(left) > 0 {
		errs = append(errs, fmt.Errorf("sandbox down: processes still alive in %s: %v", dir, left))
	}
	return errors.Join(errs...)
}

func (s *Sandbox) downPM2(ctx context.Context) error {
	pid, err := readPid(s.pm2PidFile())
	if err != nil || !alive(pid) {
		// pm2 kill would spawn a fresh daemon just to kill it.
		return nil
	}
	_, kerr := run(ctx, command{args: []string{"pm2", "kill"}, env: s.PM2Env(), timeout: 10 * time.Second})
	stop(pid, syscall.SIGKILL, time.Second)
	if alive(pid) {
		return fmt.Errorf("pm2 daemon %d survived: %v", pid, kerr)
	}
	return nil
}

func (s *Sandbox) downNginx(context.Context) error {
	pid, err := readPid(s.nginxPidFile())
	if err != nil || !alive(pid) || !cmdlineHas(pid, "nginx") {
		return nil
	}
	// SIGTERM is nginx's fast shutdown: master and workers exit now.
	if !stop(pid, syscall.SIGTERM, 2*time.Second) && !stop(pid, syscall.SIGKILL, time.Second) {
		return fmt.Errorf("nginx master %d survived", pid)
	}
	return nil
}

func (s *Sandbox) downPostgres(ctx context.Context) error {
	data := filepath.Join(s.Dir, "pg", "data")
	pid, err := readPid(filepath.Join(data, "postmaster.pid"))
	if err != nil || !alive(pid) {
		return nil
	}
	if s.PGBinDir != "" {
		run(ctx, command{args: asPostgres(filepath.Join(s.PGBinDir, "pg_ctl"), "stop",
			"-D", data, "-m", "fast", "-w", "-t", "4"), timeout: 6 * time.Second})
	}
	if alive(pid) && !stop(pid, syscall.SIGQUIT, time.Second) && !stop(pid, syscall.SIGKILL, time.Second) {
		return fmt.Errorf("postmaster %d survived", pid)
	}
	return nil
}

func (s *Sandbox) downRedis(context.Context) error {
	pid, err := readPid(filepath.Join(s.Dir, "redis", "redis.pid"))
	if err != nil || !alive(pid) || !cmdlineHas(pid, "redis") {
		return nil
	}
	if !stop(pid, syscall.SIGTERM, 2*time.Second) && !stop(pid, syscall.SIGKILL, time.Second) {
		return fmt.Errorf("redis %d survived", pid)
	}
	return nil
}

// readPid reads the first line of a pid file (postmaster.pid has more lines).
func readPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("bad pid file %s", path)
	}
	return pid, nil
}

// alive treats zombies as dead: in containers whose init does not reap,
// a killed daemon lingers as Z forever.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return false
	}
	st := s[i+2]
	return st != 'Z' && st != 'X'
}

func cmdlineHas(pid int, sub string) bool {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.Contains(string(b), sub)
}

// stop signals pid and reports whether it died within wait.
func stop(pid int, sig syscall.Signal, wait time.Duration) bool {
	if !alive(pid) {
		return true
	}
	syscall.Kill(pid, sig)
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if !alive(pid) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return !alive(pid)
}
