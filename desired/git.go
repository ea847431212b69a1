package desired

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// GitOf returns the commit of the checkout holding path and whether path
// differs from it. No git, or no repository, is not an error: it yields an
// empty GitInfo.
func GitOf(path string) GitInfo {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	git := func(args ...string) (string, bool) {
		cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
		out, err := cmd.Output()
		return strings.TrimSpace(string(out)), err == nil
	}
	commit, ok := git("rev-parse", "HEAD")
	if !ok {
		return GitInfo{}
	}
	status, ok := git("status", "--porcelain", "--", base)
	return GitInfo{Commit: commit, Dirty: !ok || status != ""}
}

// Short is a commit abbreviated for humans, with a dirty mark.
func (g GitInfo) Short() string {
	if g.Commit == "" {
		return "no git"
	}
	s := g.Commit
	if len(s) > 10 {
		s = s[:10]
	}
	if g.Dirty {
		s += "+dirty"
	}
	return s
}
