package sandbox

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

func (s *Sandbox) redisDir() string { return filepath.Join(s.Dir, "redis") }
func (s *Sandbox) redisPidFile() string {
	return filepath.Join(s.redisDir(), "redis.pid")
}

func (s *Sandbox) upRedis(ctx context.Context) error {
	d := s.redisDir()
	if err := os.MkdirAll(d, 0o700); err != nil {
		return err
	}
	conf := fmt.Sprintf(`# settle sandbox redis; contains the password
bind 127.0.0.1
protected-mode yes
port %d
daemonize yes
pidfile %s
logfile %s
dir %s
save ""
appendonly no
requirepass %s
`, s.RedisPort, s.redisPidFile(), filepath.Join(d, "redis.log"), d, s.RedisPassword)
	cf := filepath.Join(d, "redis.conf")
	if err := writeFile(cf, []byte(conf), 0o600); err != nil {
		return err
	}
	if _, err := run(ctx, command{args: []string{"redis-server", cf}}, s.RedisPassword); err != nil {
		return err
	}
	return poll(ctx, 10*time.Second, 50*time.Millisecond, func() error {
		_, err := RedisCommand(ctx, s.RedisAddr, s.RedisPassword, "PING")
		return err
	})
}

// RedisCommand sends AUTH (when password is set) then one command over RESP
// and returns the reply line of the last one. It is enough for PING, FLUSHDB
// and simple GET/SET in tests, without a client library.
func RedisCommand(ctx context.Context, addr, password string, args ...string) (string, error) {
	d := net.Dialer{Timeout: 2 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	r := bufio.NewReader(c)
	send := func(a ...string) (string, error) {
		var b strings.Builder
		fmt.Fprintf(&b, "*%d\r\n", len(a))
		for _, x := range a {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(x), x)
		}
		if _, err := c.Write([]byte(b.String())); err != nil {
			return "", err
		}
		line, err := r.ReadString('\n')
		if err != nil {
			return "", err
		}
		line = strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(line, "-") {
			return line, fmt.Errorf("redis: %s", line[1:])
		}
		if strings.HasPrefix(line, "$") && line != "$-1" {
			v, err := r.ReadString('\n')
			if err != nil {
				return "", err
			}
			return strings.TrimRight(v, "\r\n"), nil
		}
		return line, nil
	}
	if password != "" {
		if _, err := send("AUTH", password); err != nil {
			return "", err
		}
	}
	return send(args...)
}
