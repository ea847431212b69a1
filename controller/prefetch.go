package controller

import (
	"context"
	"time"

	"settle/desired"
	"settle/reconcilers"
	"settle/reconcilers/pm2"
)

// Prefetch is a PM2 observation started as soon as the desired file
// changed, while the agent still waits for the editor to finish writing.
// `pm2 jlist` costs a node process (~170 ms here), the largest part of a
// switch; started after the save, its answer is as fresh as one started
// after the debounce, so the switch need not wait for it twice.
type Prefetch struct {
	key     string
	started time.Time
	done    chan struct{}
	o       *pm2.Observed
	err     error
}

// StartPrefetch observes PM2 under the settings of d (the last good state).
func StartPrefetch(ctx context.Context, h reconcilers.Host, d *desired.Desired) *Prefetch {
	p := &Prefetch{key: prefetchKey(d), started: time.Now(), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.o, p.err = (&pm2.Reconciler{Host: h, D: d}).Observe(ctx)
	}()
	return p
}

// fits reports whether the prefetch looked at what d names: the same
// daemon, process names and health URLs.
func (p *Prefetch) fits(d *desired.Desired) bool {
	return p != nil && p.key == prefetchKey(d)
}

func prefetchKey(d *desired.Desired) string {
	return d.PM2.Home + "\x00" + d.PM2.Bin + "\x00" + d.App.Name + "\x00" + d.App.Blue.HealthURL + "\x00" + d.App.Green.HealthURL
}

func (p *Prefetch) wait() (*pm2.Observed, error) {
	<-p.done
	return p.o, p.err
}
