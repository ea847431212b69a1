package desired

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

func TestGitOf(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is needed to test GitOf: ", err)
	}
	dir := t.TempDir()
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.email=a@b", "-c", "user.name=t"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	file := filepath.Join(dir, "desired.toml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("outside a repository yields empty info", func(t *testing.T) {
		write("schema = 1\n")
		if g := GitOf(file); g != (GitInfo{}) || g.Short() != "no git" {
			t.Errorf("GitOf = %+v (%s), want empty", g, g.Short())
		}
	})

	run("init", "-q")
	run("add", "desired.toml")
	run("commit", "-q", "-m", "first")

	t.Run("clean checkout records the commit", func(t *testing.T) {
		g := GitOf(file)
		if !regexp.MustCompile(`^[0-9a-f]{40,64}$`).MatchString(g.Commit) || g.Dirty {
			t.Errorf("GitOf = %+v, want a commit and clean", g)
		}
		if s := g.Short(); s != g.Commit[:10] {
			t.Errorf("Short = %q", s)
		}
	})
	t.Run("changed file is dirty", func(t *testing.T) {
		write("schema = 1\n# edited\n")
		g := GitOf(file)
		if g.Commit == "" || !g.Dirty || g.Short() != g.Commit[:10]+"+dirty" {
			t.Errorf("GitOf = %+v (%s), want a commit and dirty", g, g.Short())
		}
	})
	t.Run("another file changing leaves this one clean", func(t *testing.T) {
		write("schema = 1\n")
		if err := os.WriteFile(filepath.Join(dir, "other"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if g := GitOf(file); g.Dirty {
			t.Errorf("GitOf = %+v, want clean", g)
		}
	})
	t.Run("Load records the provenance", func(t *testing.T) {
		write(example(t))
		run("add", "desired.toml")
		run("commit", "-q", "-m", "example")
		d, err := Load(file)
		if err != nil {
			t.Fatal(err)
		}
		if d.Git.Commit == "" || d.Git.Dirty {
			t.Errorf("Load recorded %+v", d.Git)
		}
	})
}
