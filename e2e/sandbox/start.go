package sandbox

import (
	"context"
	"os"
	"testing"
	"time"
)

// Start brings up a sandbox for a test in a fresh dir under /tmp (mode 0755
// so user postgres can traverse it) and registers Down plus removal of the
// dir as cleanup. It fails the test if Up fails.
func Start(t testing.TB) *Sandbox {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "settle-sbx-")
	if err != nil {
		t.Fatalf("sandbox: %v", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("sandbox: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	s, err := Up(ctx, dir, t.Logf)
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("sandbox up: %v", err)
	}
	t.Cleanup(func() {
		if err := Down(dir); err != nil {
			t.Errorf("sandbox down: %v", err)
		}
		if os.Getenv("SANDBOX_KEEP") == "" {
			os.RemoveAll(dir)
		}
	})
	return s
}
