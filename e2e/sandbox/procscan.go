package sandbox

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Processes returns the pids of live processes tied to dir: their command
// line mentions it, their cwd is inside it, or they hold a file open inside
// it. That catches what pid files miss: orphaned nginx workers (their argv
// does not name dir), app processes left by a killed PM2 daemon, postgres
// backends. The caller and its ancestors are never listed.
func Processes(dir string) []int {
	dir = filepath.Clean(dir)
	skip := ancestors()
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || skip[pid] || !alive(pid) {
			continue
		}
		if tiedTo(pid, dir) {
			out = append(out, pid)
		}
	}
	return out
}

func tiedTo(pid int, dir string) bool {
	p := "/proc/" + strconv.Itoa(pid)
	if b, err := os.ReadFile(p + "/cmdline"); err == nil {
		for _, arg := range strings.Split(string(b), "\x00") {
			if mentions(arg, dir) {
				return true
			}
		}
	}
	if cwd, err := os.Readlink(p + "/cwd"); err == nil && under(cwd, dir) {
		return true
	}
	fds, _ := os.ReadDir(p + "/fd")
	for _, fd := range fds {
		if t, err := os.Readlink(p + "/fd/" + fd.Name()); err == nil && under(t, dir) {
			return true
		}
	}
	return false
}

func under(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// mentions finds dir inside a free-form argument (e.g. "PM2 v6: God Daemon
// (/tmp/x/pm2)") without matching a sibling such as /tmp/x10.
func mentions(arg, dir string) bool {
	for i := 0; ; {
		j := strings.Index(arg[i:], dir)
		if j < 0 {
			return false
		}
		end := i + j + len(dir)
		if end == len(arg) || strings.ContainsRune("/ )'\":", rune(arg[end])) {
			return true
		}
		i = end
	}
}

func ancestors() map[int]bool {
	m := map[int]bool{}
	for pid := os.Getpid(); pid > 1 && !m[pid]; {
		m[pid] = true
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			break
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 2 {
			break
		}
		pid, _ = strconv.Atoi(f[1])
	}
	return m
}

// reap terminates every process tied to dir (SIGTERM, brief grace, SIGKILL)
// and returns those still alive.
func reap(dir string) []int {
	pids := Processes(dir)
	if len(pids) == 0 {
		return nil
	}
	for _, p := range pids {
		syscall.Kill(p, syscall.SIGTERM)
	}
	waitGone(pids, 1500*time.Millisecond)
	for _, p := range Processes(dir) {
		syscall.Kill(p, syscall.SIGKILL)
	}
	waitGone(Processes(dir), time.Second)
	return Processes(dir)
}

func waitGone(pids []int, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		n := 0
		for _, p := range pids {
			if alive(p) {
				n++
			}
		}
		if n == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
