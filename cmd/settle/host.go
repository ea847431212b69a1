package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"settle/desired"
	"settle/reconcilers"
	"settle/reconcilers/sshhost"
)

// hostFor is the machine the managed systems run on: this one without a
// [host] section, else the VPS over SSH. Only the systems move; the state
// dir (journal, status, lock) stays with the settle process. The closer is
// always safe to call.
func hostFor(ctx context.Context, d *desired.Desired) (reconcilers.Host, func(), error) {
	if d.Host == nil {
		return reconcilers.Local{}, func() {}, nil
	}
	user, addr := d.Host.Target()
	known := d.Host.KnownHosts
	if known == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, nil, fmt.Errorf("host.known_hosts is unset and the home directory is unknown: %w", err)
		}
		known = filepath.Join(home, ".ssh", "known_hosts")
	}
	h, err := sshhost.Dial(ctx, sshhost.Config{
		User:           user,
		Addr:           addr,
		KnownHosts:     known,
		Identity:       d.Host.Identity,
		ConnectTimeout: d.Host.ConnectTimeoutDur(),
		Keepalive:      d.Host.KeepaliveDur(),
	})
	if err != nil {
		return nil, nil, err
	}
	return h, func() { h.Close() }, nil
}
