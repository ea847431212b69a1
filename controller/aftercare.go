package controller

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"settle/desired"
	"settle/forensics"
	"settle/reconcilers"
	"settle/reconcilers/nginx"
	"settle/reconcilers/postgres"
	"settle/snapshot"
	"settle/state"
	"settle/verify"
)

// servedColor is the color nginx's upstream file points at now, "" if
// neither.
func servedColor(d *desired.Desired, o observations) string {
	if o.nginx == nil || len(o.nginx.Upstream.Servers) != 1 {
		return ""
	}
	switch o.nginx.Upstream.Servers[0] {
	case "127.0.0.1:" + strconv.Itoa(d.App.Blue.Port):
		return desired.Blue
	case "127.0.0.1:" + strconv.Itoa(d.App.Green.Port):
		return desired.Green
	}
	return ""
}

// destructive says why p is about to do something that loses evidence: a
// database swap, or traffic leaving a color.
func destructive(d *desired.Desired, p *Plan, reportOnly func(string) bool) string {
	var why []string
	for _, r := range p.Resources {
		if reportOnly(r.Kind) {
			continue // it will not be touched
		}
		if r.Kind == postgres.Kind && hasOp(r, postgres.OpSwap) {
			why = append(why, "swap")
		}
		if r.Kind == nginx.Kind && hasOp(r, nginx.OpWrite) {
			if from := servedColor(d, p.obs); from != "" && from != d.App.Active {
				why = append(why, "leave-"+from)
			}
		}
	}
	return strings.Join(why, "-")
}

// captureForensics saves what an on-call engineer will want to read later
// in one place: the leaving color's PM2 logs, nginx's logs, and the desired
// file before and after.
func (e *Engine) captureForensics(ctx context.Context, d *desired.Desired, p *Plan, reason string) string {
	ngx := &nginx.Reconciler{Host: e.Host, D: d}
	access := d.Nginx.AccessLog
	if access == "" {
		access = filepath.Join(filepath.Dir(ngx.ErrorLog(ctx)), "access.log")
	}
	files := []forensics.Source{
		{Name: "nginx-error.log", Path: ngx.ErrorLog(ctx), TailBytes: 256 << 10},
		{Name: "nginx-access.log", Path: access, TailBytes: 1 << 20},
		{Name: "nginx-upstream.conf", Path: d.Nginx.UpstreamFile},
	}
	leaving := servedColor(d, p.obs)
	if leaving == "" {
		leaving = d.App.Active
	}
	if o := p.obs.pm2; o != nil {
		if proc, ok := o.Procs[d.App.ProcessName(leaving)]; ok {
			name := d.App.ProcessName(leaving)
			files = append(files,
				forensics.Source{Name: name + "-out.log", Path: proc.OutLog, TailBytes: 256 << 10},
				forensics.Source{Name: name + "-error.log", Path: proc.ErrLog, TailBytes: 256 << 10})
		}
	}
	extra := map[string][]byte{"desired-after.toml": d.Raw}
	if prev := e.Status().Applied.Generation; prev != "" {
		if b, err := os.ReadFile(e.genPath(prev)); err == nil {
			extra["desired-before.toml"] = b
		}
	}
	dir, err := forensics.Capture(ctx, e.Host, forensics.Options{StateDir: e.Dir, Reason: reason, Files: files, Extra: extra})
	if err != nil {
		e.Log.Warn("forensics capture failed; going on", "err", errString(err))
		return ""
	}
	e.Log.Info("forensics captured", "dir", dir)
	e.Journal.Append(state.Stamp(state.Entry{Event: state.EvForensics, Detail: reason, Data: map[string]any{"dir": dir}}, d))
	return dir
}

// dumpReplaced adds a dump of the database the swap replaced to the
// forensics, from the kept copy, after traffic has moved.
func (e *Engine) dumpReplaced(ctx context.Context, d *desired.Desired, dir string, res *Result) {
	kept := ""
	for _, o := range res.Outcomes {
		if v, ok := o.Notes["kept_database"].(string); ok {
			kept = v
		}
	}
	if dir == "" || kept == "" {
		return
	}
	start := time.Now()
	pg := &postgres.Reconciler{Host: e.Host, D: d}
	err := forensics.AddStream(dir, kept+".dump", func(w io.Writer) error { return pg.Dump(ctx, kept, w) })
	if err != nil {
		e.Log.Warn("dump of the replaced database failed; it is still kept", "database", kept, "err", errString(err))
		return
	}
	e.Log.Info("replaced database dumped to forensics", "database", kept, "took", time.Since(start).Round(time.Millisecond))
	e.Journal.Append(state.Stamp(state.Entry{Event: state.EvForensics, Detail: "dump of " + kept,
		DurationMS: float64(time.Since(start).Microseconds()) / 1000, Data: map[string]any{"dir": dir, "file": kept + ".dump"}}, d))
}

// verifyAfter runs the runbook's post-rollback checklist and journals it.
func (e *Engine) verifyAfter(ctx context.Context, d *desired.Desired, since time.Time) verify.Results {
	active := d.App.Color(d.App.Active)
	checks := verify.Results{verify.ColorHealthy(d.App.Active, reconcilers.Get(ctx, e.Host, active.HealthURL, 3*time.Second))}
	if u := d.Nginx.VerifyURL; u != "" {
		checks = append(checks, verify.ThroughNginx(u, d.App.Active, reconcilers.Get(ctx, e.Host, u, 3*time.Second)))
	}
	if p := d.Postgres; p != nil {
		if f, err := snapshot.Find(ctx, e.Host, p.SnapshotDir, p.Snapshot); err == nil && f.Manifest != nil {
			got, err := (&postgres.Reconciler{Host: e.Host, D: d}).RowCounts(ctx)
			if err != nil {
				checks = append(checks, verify.Check{Name: "row counts", Detail: errString(err)})
			} else {
				checks = append(checks, verify.RowCounts(f.Manifest.Rows, got))
			}
		}
	}
	if hits, err := verify.ReadAccessLog(ctx, e.Host, e.accessLog(ctx, d), since, 0); err == nil {
		checks = append(checks, verify.Traffic("traffic through nginx since the apply", verify.Window(hits, since, time.Time{}, ""), e.thresholds(d)))
	}
	checks = checks.Redacted()
	outcome := "ok"
	if !checks.OK() {
		outcome = "failed"
	}
	var failed []string
	for _, c := range checks.Failed() {
		failed = append(failed, c.Name+": "+c.Detail)
	}
	e.Journal.Append(state.Stamp(state.Entry{Event: state.EvVerify, Outcome: outcome, Detail: strings.Join(failed, "; "),
		Data: map[string]any{"checks": checks}}, d))
	e.Update(func(s *state.Status) { s.Verification = toStatusChecks(checks) })
	if outcome != "ok" {
		e.Log.Warn("verification found problems", "failed", strings.Join(failed, "; "))
	}
	return checks
}

func toStatusChecks(cs verify.Results) []state.Check {
	out := make([]state.Check, len(cs))
	for i, c := range cs {
		out[i] = state.Check{Name: c.Name, OK: c.OK, Detail: c.Detail}
	}
	return out
}

func (e *Engine) accessLog(ctx context.Context, d *desired.Desired) string {
	if d.Nginx.AccessLog != "" {
		return d.Nginx.AccessLog
	}
	return filepath.Join(filepath.Dir((&nginx.Reconciler{Host: e.Host, D: d}).ErrorLog(ctx)), "access.log")
}

func (e *Engine) thresholds(d *desired.Desired) verify.Thresholds {
	return verify.Thresholds{MaxErrorRate: d.Agent.MaxErrorRate, MaxLatency: d.MaxLatency(), MinRequests: 5}
}

// genPath is where the bytes of a converged generation are kept, so a held
// generation can fall back to the last good one and forensics can show the
// file before and after.
func (e *Engine) genPath(gen string) string {
	return filepath.Join(e.Dir, "generations", gen+".toml")
}

func (e *Engine) keepGeneration(d *desired.Desired) {
	path := e.genPath(d.Generation)
	if _, err := os.Stat(path); err == nil {
		return
	}
	os.MkdirAll(filepath.Dir(path), 0o700)
	if err := reconcilers.WriteFileAtomic(path, d.Raw, 0o600); err != nil {
		e.Log.Warn("cannot keep a copy of the generation", "err", err)
	}
}

// LoadGeneration reads a converged generation back.
func (e *Engine) LoadGeneration(gen, name string) (*desired.Desired, error) {
	b, err := os.ReadFile(e.genPath(gen))
	if err != nil {
		return nil, fmt.Errorf("generation %s: %w", short(gen), err)
	}
	return desired.Parse(name, b)
}
