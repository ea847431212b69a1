// Package nginx reconciles the upstream file settle owns: which color's port
// nginx proxies to, written atomically, tested, reloaded and verified.
package nginx

import (
	"fmt"
	"regexp"
	"strings"

	"settle/desired"
)

// Render is the whole upstream file for d's active color. The header names
// the generation that wrote it; the plan compares meaning, not bytes, so the
// header alone never counts as drift.
func Render(d *desired.Desired) []byte {
	port := d.App.Color(d.App.Active).Port
	return []byte(fmt.Sprintf(`# Managed by settle: do not edit. Edits are reverted (or reported) by the agent.
# To move traffic, change app.active in %s.
# generation %s, commit %s, active %s
upstream %s {
    server 127.0.0.1:%d;
}
`, d.Path, short(d.Generation), d.Git.Short(), d.App.Active, d.Nginx.Upstream, port))
}

func short(gen string) string {
	if len(gen) > 12 {
		return gen[:12]
	}
	return gen
}

// Upstream is what an upstream file says.
type Upstream struct {
	Name    string
	Servers []string // "host:port" of each server line, in order
}

var (
	upstreamRe = regexp.MustCompile(`(?s)upstream\s+([A-Za-z0-9_-]+)\s*\{(.*?)\}`)
	// server directives anywhere in the block: a hand edit may put two on a line.
	serverRe  = regexp.MustCompile(`(?:^|[\s;{])server\s+([^\s;]+)[^;]*;`)
	commentRe = regexp.MustCompile(`(?m)#.*$`)
)

// ParseUpstream reads the upstream block named name from an nginx file.
// ok is false when the file has no such block.
func ParseUpstream(data []byte, name string) (u Upstream, ok bool) {
	text := commentRe.ReplaceAllString(string(data), "")
	for _, m := range upstreamRe.FindAllStringSubmatch(text, -1) {
		if m[1] != name {
			continue
		}
		u.Name = name
		for _, s := range serverRe.FindAllStringSubmatch(m[2], -1) {
			u.Servers = append(u.Servers, s[1])
		}
		return u, true
	}
	return u, false
}

// Want is the single server line the active color needs.
func Want(d *desired.Desired) string {
	return fmt.Sprintf("127.0.0.1:%d", d.App.Color(d.App.Active).Port)
}

func (u Upstream) String() string {
	if u.Name == "" {
		return "no upstream block"
	}
	return "servers " + strings.Join(u.Servers, ", ")
}
