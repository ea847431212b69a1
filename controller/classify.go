package controller

import "settle/reconcilers"

// Classify marks each out-of-sync resource as intended (its desired value
// changed since the last converged generation: someone edited the file) or
// drift (the desired value is what settle last converged to, so the machine
// changed behind its back). applied maps resource ID to its desired value at
// the last convergence; with no history everything counts as intended.
func Classify(p *Plan, applied map[string]string) {
	for i := range p.Resources {
		r := &p.Resources[i]
		if r.Status == reconcilers.InSync || r.Status == reconcilers.Failed {
			r.Cause = "" // an error is neither intended nor drift: it is an error
			continue
		}
		if want, ok := applied[r.ID()]; ok && want == r.Desired {
			r.Cause = "drift"
		} else {
			r.Cause = "intended"
		}
	}
}

// Wants maps resource ID to desired value: what Classify compares with.
func (p *Plan) Wants() map[string]string {
	m := map[string]string{}
	for _, r := range p.Resources {
		m[r.ID()] = r.Desired
	}
	return m
}
