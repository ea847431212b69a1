package nginx

import (
	"bytes"
	"fmt"

	"settle/desired"
	"settle/reconcilers"
)

// Kind is this reconciler's resource kind.
const Kind = "nginx"

// Ops this reconciler applies.
const (
	OpWrite  = "write"  // write the upstream file, nginx -t, restore on failure
	OpReload = "reload" // nginx -s reload, then verify it took
)

// Plan compares the upstream file and what nginx serves with d. Pure.
func Plan(d *desired.Desired, o *Observed) reconcilers.Resource {
	want := Want(d)
	res := reconcilers.Resource{Kind: Kind, Name: d.Nginx.Upstream, Status: reconcilers.InSync,
		Desired: fmt.Sprintf("upstream %s -> %s (%s)", d.Nginx.Upstream, want, d.App.Active)}
	switch {
	case o.FileErr != nil:
		res.Actual = "unreadable"
		res.Status = reconcilers.Failed
		res.Reason = reconcilers.Redact(o.FileErr.Error())
		return res
	case o.File == nil:
		res.Actual = "upstream file missing"
	case !o.HasBlock:
		res.Actual = "no upstream " + d.Nginx.Upstream + " block in the file"
	default:
		res.Actual = "upstream " + d.Nginx.Upstream + " -> " + joinServers(o.Upstream.Servers)
	}
	if o.MasterPID == 0 {
		res.Status = reconcilers.Failed
		res.Reason = o.MasterErr + "; start nginx (systemctl start nginx) and settle will switch it"
		return res
	}
	act := func(op, detail string) {
		res.Actions = append(res.Actions, reconcilers.Action{Kind: Kind, Resource: res.Name, Op: op, Detail: detail})
	}
	fileOK := o.HasBlock && len(o.Upstream.Servers) == 1 && o.Upstream.Servers[0] == want
	if !fileOK {
		act(OpWrite, fmt.Sprintf("write %s (server %s), nginx -t", d.Nginx.UpstreamFile, want))
	}
	servedWrong := o.Served != "" && o.Served != d.App.Active
	if !fileOK || servedWrong {
		detail := "nginx -s reload, verify"
		if d.Nginx.VerifyURL != "" {
			detail += " " + d.Nginx.VerifyURL + " answers from " + d.App.Active
		}
		act(OpReload, detail)
	}
	if servedWrong {
		res.Actual += fmt.Sprintf("; nginx serves %s", o.Served)
	}
	if d.Nginx.VerifyURL != "" && !o.VerifyResp.OK() {
		// The file may be right and nginx still not serve: the port it names
		// is dead. Not in sync, whatever the file says; apply cannot fix it
		// here, so it stays drifted and the apply fails loudly.
		res.Actual += "; " + d.Nginx.VerifyURL + " answers " + o.VerifyResp.String()
		res.Status = reconcilers.Drifted
	}
	if len(res.Actions) > 0 {
		res.Status = reconcilers.Drifted
	}
	return res
}

func joinServers(s []string) string {
	if len(s) == 0 {
		return "(no servers)"
	}
	var b bytes.Buffer
	for i, v := range s {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(v)
	}
	return b.String()
}
