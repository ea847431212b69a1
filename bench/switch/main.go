// Command switch measures a blue-green switch driven by settle's agent,
// with load running through nginx: time from the desired file's save to the
// first response served by the new color (p50/p99), and failed requests.
// For scale it measures the same switch done by hand (write the upstream
// file, nginx -t, reload) in the same sandbox.
//
// Usage: go run ./bench/switch [-n 20] [-settle bin/settle]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"settle/e2e/sandbox"
)

func main() {
	n := flag.Int("n", 20, "switches to measure (each way counts one)")
	bin := flag.String("settle", "bin/settle", "settle binary")
	workers := flag.Int("workers", 4, "load workers through nginx")
	flag.Parse()
	if err := run(*n, *bin, *workers); err != nil {
		fmt.Fprintln(os.Stderr, "bench/switch:", err)
		os.Exit(1)
	}
}

func run(n int, bin string, workers int) error {
	bin, _ = filepath.Abs(bin)
	dir, err := os.MkdirTemp("/tmp", "settle-bench-")
	if err != nil {
		return err
	}
	os.Chmod(dir, 0o755)
	defer os.RemoveAll(dir)
	ctx := context.Background()
	s, err := sandbox.Up(ctx, dir, nil)
	if err != nil {
		return err
	}
	defer sandbox.Down(dir)
	env := append(os.Environ(), s.Env()...)
	if out, err := command(env, bin, "apply", "-f", s.DesiredPath).CombinedOutput(); err != nil {
		return fmt.Errorf("settle apply: %v\n%s", err, out)
	}

	l := startLoad(s.FrontURL, workers)
	defer l.stop()

	// By hand: the upstream file rewritten, tested and reloaded by a script.
	var hand []time.Duration
	color := "blue"
	for i := 0; i < n; i++ {
		color = other(color)
		port := s.BluePort
		if color == "green" {
			port = s.GreenPort
		}
		t0 := time.Now()
		os.WriteFile(s.UpstreamFile, []byte(sandbox.UpstreamConf(port)), 0o644)
		args := s.NginxArgs()
		if out, err := exec.Command(args[0], append(args[1:], "-t", "-q")...).CombinedOutput(); err != nil {
			return fmt.Errorf("nginx -t: %v: %s", err, out)
		}
		exec.Command(args[0], append(args[1:], "-s", "reload")...).Run()
		d, err := l.firstAfter(t0, color, 10*time.Second)
		if err != nil {
			return fmt.Errorf("by hand: %w", err)
		}
		hand = append(hand, d)
		time.Sleep(300 * time.Millisecond)
	}
	// Leave it as settle expects before the agent starts.
	os.WriteFile(s.UpstreamFile, []byte(sandbox.UpstreamConf(s.BluePort)), 0o644)
	args := s.NginxArgs()
	exec.Command(args[0], append(args[1:], "-s", "reload")...).Run()
	time.Sleep(300 * time.Millisecond)
	if color != "blue" {
		color = "blue"
	}
	l.reset()

	agent := command(env, bin, "agent", "-f", s.DesiredPath, "--listen", "off")
	var logs bytes.Buffer
	agent.Stdout, agent.Stderr = &logs, &logs
	if err := agent.Start(); err != nil {
		return err
	}
	defer func() { agent.Process.Signal(os.Interrupt); agent.Wait() }()
	time.Sleep(1500 * time.Millisecond)

	var lat []time.Duration
	ways := []string{"rename", "inplace", "sed"}
	for i := 0; i < n; i++ {
		color = other(color)
		t0 := time.Now()
		if err := setActive(s.DesiredPath, ways[i%len(ways)], color); err != nil {
			return err
		}
		d, err := l.firstAfter(t0, color, 10*time.Second)
		if err != nil {
			return fmt.Errorf("switch %d to %s: %w\nagent log:\n%s", i+1, color, err, logs.String())
		}
		lat = append(lat, d)
		// Let the agent finish verifying before the next edit.
		time.Sleep(600 * time.Millisecond)
	}
	ok, failed := l.counts()
	fmt.Printf("blue-green switch under load (%d workers through nginx, standby running, %d switches)\n", workers, n)
	fmt.Printf("  settle agent, save -> first response from new color: p50 %s  p99 %s  max %s  (targets: p50 <= 300ms, p99 <= 1s)\n",
		pct(lat, 50), pct(lat, 99), pct(lat, 100))
	fmt.Printf("  by hand (write upstream, nginx -t, reload):           p50 %s  p99 %s\n", pct(hand, 50), pct(hand, 99))
	fmt.Printf("  ratio settle/by-hand p50: %.2f\n", float64(pct(lat, 50))/float64(pct(hand, 50)))
	fmt.Printf("  requests during settle switches: %d ok, %d failed (target 0)\n", ok, failed)
	if failed > 0 {
		return fmt.Errorf("%d failed requests", failed)
	}
	return nil
}

func command(env []string, bin string, args ...string) *exec.Cmd {
	c := exec.Command(bin, args...)
	c.Env = env
	return c
}

func other(c string) string {
	if c == "blue" {
		return "green"
	}
	return "blue"
}

var activeRe = regexp.MustCompile(`(?m)^active\s*=\s*"[a-z]+"`)

// setActive edits the file the ways editors do: rename over, rewrite in
// place, or sed -i.
func setActive(path, how, color string) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	next := activeRe.ReplaceAll(old, []byte(`active = "`+color+`"`))
	switch how {
	case "rename":
		tmp := path + ".swp"
		if err := os.WriteFile(tmp, next, 0o644); err != nil {
			return err
		}
		return os.Rename(tmp, path)
	case "inplace":
		return os.WriteFile(path, next, 0o644)
	default:
		return exec.Command("sed", "-i", "-E", `s/^active\s*=\s*"[a-z]+"/active = "`+color+`"/`, path).Run()
	}
}

func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*p + 99) / 100
	if i < 1 {
		i = 1
	}
	if i > len(s) {
		i = len(s)
	}
	return s[i-1].Round(time.Millisecond)
}

// load keeps requests flowing through nginx and remembers, per color, when
// responses came back.
type load struct {
	url        string
	ok, failed atomic.Int64
	mu         sync.Mutex
	seen       []sample
	done       chan struct{}
	wg         sync.WaitGroup
}

type sample struct {
	at    time.Time
	color string
}

func startLoad(url string, workers int) *load {
	l := &load{url: url, done: make(chan struct{})}
	client := &http.Client{Timeout: 5 * time.Second}
	for i := 0; i < workers; i++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.done:
					return
				default:
				}
				resp, err := client.Get(url)
				if err != nil {
					l.failed.Add(1)
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					l.failed.Add(1)
					continue
				}
				l.ok.Add(1)
				var v struct{ Color string }
				json.Unmarshal(body, &v)
				l.mu.Lock()
				l.seen = append(l.seen, sample{time.Now(), v.Color})
				if len(l.seen) > 200000 {
					l.seen = l.seen[100000:]
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func (l *load) stop() { close(l.done); l.wg.Wait() }

func (l *load) reset() { l.ok.Store(0); l.failed.Store(0) }

func (l *load) counts() (int64, int64) { return l.ok.Load(), l.failed.Load() }

// firstAfter waits for the first response of color completed after t0.
func (l *load) firstAfter(t0 time.Time, color string, max time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(max)
	for time.Now().Before(deadline) {
		l.mu.Lock()
		// Walk back over the samples after t0; the last match is the earliest.
		var first time.Time
		for i := len(l.seen) - 1; i >= 0 && l.seen[i].at.After(t0); i-- {
			if l.seen[i].color == color {
				first = l.seen[i].at
			}
		}
		l.mu.Unlock()
		if !first.IsZero() {
			return first.Sub(t0), nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return 0, fmt.Errorf("no response from %s within %s", color, max)
}
