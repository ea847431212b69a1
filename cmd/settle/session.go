package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"syscall"

	"settle/desired"
	"settle/notify"
	"settle/reconcilers"
	"settle/state"
)

// load reads the desired file and registers the secrets it names, so no
// output can carry them. Problems go to stderr.
func load(path string, stderr io.Writer) (*desired.Desired, bool) {
	d, err := desired.Load(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return nil, false
	}
	registerSecrets(d)
	return d, true
}

func registerSecrets(d *desired.Desired) {
	if d.Postgres != nil {
		reconcilers.AddSecretDSN(os.Getenv(d.Postgres.DSNEnv))
	}
	if d.Redis != nil && d.Redis.PasswordEnv != "" {
		reconcilers.AddSecret(os.Getenv(d.Redis.PasswordEnv))
	}
	if d.Agent.NotifyEnv != "" {
		reconcilers.AddSecret(os.Getenv(d.Agent.NotifyEnv))
	}
}

func newLogger(w io.Writer, verbose bool) *slog.Logger {
	lvl := slog.LevelInfo
	if verbose {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl}))
}

// appliedWants is what the last convergence wanted, for drift classification.
func appliedWants(d *desired.Desired) map[string]string {
	st, err := state.ReadStatus(d.Agent.StateDir)
	if err != nil {
		return nil
	}
	return st.AppliedWants
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0 && os.Getenv("NO_COLOR") == ""
}

// notifier posts to the webhook the desired file names (agent.notify_url_env,
// default SETTLE_WEBHOOK_URL); none configured means no notifications.
func notifier(d *desired.Desired, log *slog.Logger) *notify.Notifier {
	name := d.Agent.NotifyEnv
	if name == "" {
		name = "SETTLE_WEBHOOK_URL"
	}
	return notify.New(os.Getenv(name), log)
}

var syscallZero = syscall.Signal(0)

var stateDirRe = regexp.MustCompile(`(?m)^\s*state_dir\s*=\s*"([^"]+)"`)

// looseStateDir finds agent.state_dir in a file that may not validate.
func looseStateDir(file string) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return ""
	}
	if m := stateDirRe.FindSubmatch(b); m != nil {
		return string(m[1])
	}
	if strings.TrimSpace(string(b)) == "" {
		return "" // an empty file says nothing, not "the default"
	}
	return desired.DefaultStateDir
}
