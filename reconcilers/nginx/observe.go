package nginx

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"settle/desired"
	"settle/reconcilers"
)

// Observed is nginx as settle sees it.
type Observed struct {
	File       []byte // the upstream file; nil when missing
	FileErr    error  // reading failed for another reason than absence
	Upstream   Upstream
	HasBlock   bool
	MasterPID  int // 0 when no master runs
	MasterErr  string
	Served     string // color named by verify_url's answer, "" when unknown
	VerifyResp reconcilers.Probe
}

// Reconciler owns one upstream file and the nginx that includes it.
type Reconciler struct {
	Host reconcilers.Host
	D    *desired.Desired

	prev  []byte // the upstream file before this apply's write, for undoing a switch
	wrote bool
}

func (r *Reconciler) Observe(ctx context.Context) (*Observed, error) {
	o := &Observed{}
	b, err := r.Host.ReadFile(ctx, r.D.Nginx.UpstreamFile)
	switch {
	case err == nil:
		o.File = b
		o.Upstream, o.HasBlock = ParseUpstream(b, r.D.Nginx.Upstream)
	case !reconcilers.IsNotExist(err):
		o.FileErr = err
	}
	o.MasterPID, err = r.masterPID(ctx)
	if err != nil {
		o.MasterErr = err.Error()
	}
	if r.D.Nginx.VerifyURL != "" && o.MasterPID > 0 {
		o.VerifyResp = reconcilers.Get(ctx, r.Host, r.D.Nginx.VerifyURL, 2*time.Second)
		o.Served = ColorOf(o.VerifyResp.Body)
	}
	return o, nil
}

// ColorOf reads the "color" field an app's health answer may carry.
func ColorOf(body []byte) string {
	var v struct {
		Color string `json:"color"`
	}
	if json.Unmarshal(body, &v) == nil && (v.Color == desired.Blue || v.Color == desired.Green) {
		return v.Color
	}
	return ""
}

var (
	pidRe      = regexp.MustCompile(`(?m)^\s*pid\s+([^;\s]+)\s*;`)
	errorLogRe = regexp.MustCompile(`(?m)^\s*error_log\s+([^;\s]+)[^;]*;`)
)

// PidFile is where the master of config writes its pid: the config's `pid`
// directive, relative to the prefix, else the Debian default.
func (r *Reconciler) PidFile(ctx context.Context) string {
	conf, _ := r.Host.ReadFile(ctx, r.D.Nginx.Config)
	if m := pidRe.FindSubmatch(conf); m != nil {
		return r.abs(string(m[1]))
	}
	if r.D.Nginx.Prefix != "" {
		return filepath.Join(r.D.Nginx.Prefix, "logs/nginx.pid")
	}
	return "/run/nginx.pid"
}

// ErrorLog is the log to read new [emerg] lines from after a reload.
func (r *Reconciler) ErrorLog(ctx context.Context) string {
	if r.D.Nginx.ErrorLog != "" {
		return r.D.Nginx.ErrorLog
	}
	conf, _ := r.Host.ReadFile(ctx, r.D.Nginx.Config)
	if m := errorLogRe.FindSubmatch(conf); m != nil && string(m[1]) != "stderr" {
		return r.abs(string(m[1]))
	}
	if r.D.Nginx.Prefix != "" {
		return filepath.Join(r.D.Nginx.Prefix, "logs/error.log")
	}
	return "/var/log/nginx/error.log"
}

func (r *Reconciler) abs(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	prefix := r.D.Nginx.Prefix
	if prefix == "" {
		prefix = "/usr/share/nginx"
	}
	return filepath.Join(prefix, p)
}

func (r *Reconciler) masterPID(ctx context.Context) (int, error) {
	pf := r.PidFile(ctx)
	b, err := r.Host.ReadFile(ctx, pf)
	if err != nil {
		return 0, fmt.Errorf("nginx master not running (no pid file %s)", pf)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("nginx pid file %s does not hold a pid", pf)
	}
	if _, err := r.Host.Run(ctx, reconcilers.Cmd{Argv: []string{"kill", "-0", strconv.Itoa(pid)}}); err != nil {
		return 0, fmt.Errorf("nginx master not running (pid %d from %s is gone)", pid, pf)
	}
	return pid, nil
}
