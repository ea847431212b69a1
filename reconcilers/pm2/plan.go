package pm2

import (
	"fmt"
	"path/filepath"
	"time"

	"settle/desired"
	"settle/reconcilers"
)

// Kind is this reconciler's resource kind.
const Kind = "pm2"

// Ops this reconciler applies.
const (
	OpStart   = "start"   // pm2 start <ecosystem> --only <name>, from the color's dir
	OpRestart = "restart" // pm2 restart <name>
	OpReplace = "replace" // pm2 delete <name>, then start: the release dir moved
	OpStop    = "stop"    // pm2 stop <name>
	OpWait    = "wait"    // wait until online past min uptime and healthy
)

// Want is what one color's process should be.
type Want string

const (
	WantHealthy Want = "online and healthy"
	WantOnline  Want = "online"
	WantStopped Want = "stopped"
)

// WantFor says what each color should be under d.
func WantFor(d *desired.Desired, color string) Want {
	switch {
	case color == d.App.Active:
		return WantHealthy
	case d.App.Standby == desired.StandbyRunning:
		return WantOnline
	}
	return WantStopped
}

// Plan compares both colors with what PM2 reports. Pure: o.At stands for now.
func Plan(d *desired.Desired, o *Observed) []reconcilers.Resource {
	var out []reconcilers.Resource
	for _, c := range []string{desired.Blue, desired.Green} {
		out = append(out, planColor(d, o, c))
	}
	return out
}

func planColor(d *desired.Desired, o *Observed, color string) reconcilers.Resource {
	name := d.App.ProcessName(color)
	rel := d.App.Color(color)
	want := WantFor(d, color)
	res := reconcilers.Resource{Kind: Kind, Name: name, Desired: string(want), Status: reconcilers.InSync}
	p, exists := o.Procs[name]
	res.Actual = Describe(p, exists, o.At)
	act := func(op, detail string) {
		res.Actions = append(res.Actions, reconcilers.Action{Kind: Kind, Resource: name, Op: op, Detail: detail,
			Args: map[string]string{"color": color}})
	}
	start := fmt.Sprintf("pm2 start %s --only %s (in %s)", rel.Ecosystem, name, rel.Dir)
	movedDir := exists && p.Cwd != "" && filepath.Clean(p.Cwd) != filepath.Clean(rel.Dir)

	if want == WantStopped {
		if exists && p.Status != "stopped" {
			act(OpStop, "pm2 stop "+name)
		}
	} else {
		switch {
		case !exists:
			act(OpStart, start)
		case movedDir:
			act(OpReplace, fmt.Sprintf("pm2 delete %s, then %s: it runs from %s", name, start, p.Cwd))
		case p.Status == "stopped" || p.Status == "errored":
			act(OpRestart, "pm2 restart "+name)
		case p.Status == "online" && !p.Health.OK() && o.At.Sub(p.Since) > d.StartTimeout():
			// Online for longer than a start may take and still unhealthy:
			// for the standby too, since it is the instant-rollback target.
			act(OpRestart, fmt.Sprintf("pm2 restart %s: unhealthy (%s) for longer than start_timeout", name, p.Health))
		}
		if want == WantHealthy && (len(res.Actions) > 0 || !Healthy(p, o.At)) {
			act(OpWait, fmt.Sprintf("wait for %s online past min uptime and %s answering 200", name, rel.HealthURL))
		}
	}
	if len(o.Dupes) > 0 && contains(o.Dupes, name) {
		res.Reason = "PM2 lists " + name + " more than once; delete the extra entries by hand (pm2 delete <id>)"
	}
	if len(res.Actions) > 0 {
		res.Status = reconcilers.Drifted
	}
	return res
}

// Healthy is the gate for moving traffic: online, stable past min uptime,
// and its health URL answering 200.
func Healthy(p Proc, now time.Time) bool {
	return p.Status == "online" && now.Sub(p.Since) >= p.MinUptime && p.Health.OK()
}

// Describe renders a process's state for plans and status.
func Describe(p Proc, exists bool, now time.Time) string {
	if !exists {
		return "not in PM2"
	}
	s := p.Status
	if p.Status == "online" {
		s += fmt.Sprintf(" for %s", now.Sub(p.Since).Round(time.Second))
		if p.Health.OK() {
			s += ", healthy"
		} else {
			s += ", health: " + p.Health.String()
		}
	}
	if p.Restarts > 0 {
		s += fmt.Sprintf(", %d restarts", p.Restarts)
	}
	return s
}

func contains(vs []string, v string) bool {
	for _, x := range vs {
		if x == v {
			return true
		}
	}
	return false
}
