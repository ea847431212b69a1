package sandbox

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

func (s *Sandbox) nginxPidFile() string {
	return filepath.Join(s.NginxPrefix, "logs", "nginx.pid")
}

// NginxArgs is the argv prefix that addresses this sandbox's nginx; append
// "-t" or "-s", "reload".
func (s *Sandbox) NginxArgs() []string {
	return []string{"nginx", "-p", s.NginxPrefix + "/", "-c", s.NginxConf,
		"-e", filepath.Join(s.NginxPrefix, "logs", "error.log")}
}

// UpstreamConf is the upstream file content pointing at one port; up writes
// the blue one, and settle rewrites it on a switch.
func UpstreamConf(port int) string {
	return fmt.Sprintf("upstream app_upstream {\n    server 127.0.0.1:%d;\n}\n", port)
}

func (s *Sandbox) upNginx(ctx context.Context) error {
	p := s.NginxPrefix
	for _, d := range []string{"logs", "conf.d", "tmp"} {
		if err := os.MkdirAll(filepath.Join(p, d), 0o755); err != nil {
			return err
		}
	}
	// Workers must drop root, and the user directive is only legal as root.
	userLine := ""
	if os.Geteuid() == 0 {
		userLine = "user nobody nogroup;"
	}
	conf := fmt.Sprintf(`# settle sandbox nginx
daemon on;
master_process on;
worker_processes 1;
%[1]s
pid %[2]s/logs/nginx.pid;
error_log %[2]s/logs/error.log warn;

events {
    worker_connections 256;
}

http {
    default_type application/octet-stream;
    log_format settle '$time_iso8601 $status $request_time $upstream_addr "$request"';
    access_log %[2]s/logs/access.log settle;

    client_body_temp_path %[2]s/tmp/client_body;
    proxy_temp_path %[2]s/tmp/proxy;
    fastcgi_temp_path %[2]s/tmp/fastcgi;
    uwsgi_temp_path %[2]s/tmp/uwsgi;
    scgi_temp_path %[2]s/tmp/scgi;

    include %[3]s;

    server {
        listen 127.0.0.1:%[4]d;
        server_name _;

        location / {
            proxy_pass http://app_upstream;
            # One upstream at a time: a failure must show, not be retried away.
            proxy_next_upstream off;
            proxy_connect_timeout 2s;
            proxy_read_timeout 15s;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $remote_addr;
        }
    }
}
`, userLine, p, s.UpstreamFile, s.NginxPort)
	if err := writeFile(s.UpstreamFile, []byte(UpstreamConf(s.BluePort)), 0o644); err != nil {
		return err
	}
	if err := writeFile(s.NginxConf, []byte(conf), 0o644); err != nil {
		return err
	}
	// nginx binds its sockets before daemonizing, so when this returns the
	// port is listening; the pid file follows right after.
	if _, err := run(ctx, command{args: s.NginxArgs()}); err != nil {
		return err
	}
	return poll(ctx, 5*time.Second, 20*time.Millisecond, func() error {
		_, err := readPid(s.nginxPidFile())
		return err
	})
}
