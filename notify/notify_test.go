package notify

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"settle/reconcilers"
)

func TestDeliversWithRetriesAndRedacts(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			w.WriteHeader(http.StatusBadGateway) // the first try fails
			return
		}
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, string(b))
	}))
	defer srv.Close()
	reconcilers.AddSecret("canary-notify-77c")
	n := New(srv.URL+"/hooks/T0KEN", slog.New(slog.NewTextHandler(io.Discard, nil)))
	n.backoff = time.Millisecond
	n.Send(Event{Kind: ApplyFailed, Text: "failed: password=canary-notify-77c"})
	n.Close(5 * time.Second)
	mu.Lock()
	defer mu.Unlock()
	if calls != 2 || len(bodies) != 1 {
		t.Fatalf("%d calls, %d delivered; want a retry then one delivery", calls, len(bodies))
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(bodies[0]), &v); err != nil || v["text"] == nil || v["kind"] != ApplyFailed {
		t.Fatalf("body %s: not Slack-compatible JSON with text and kind", bodies[0])
	}
	if strings.Contains(bodies[0], "canary-notify-77c") {
		t.Fatalf("a secret reached the webhook: %s", bodies[0])
	}
}

func TestNilNotifierDropsQuietly(t *testing.T) {
	var n *Notifier // no webhook configured
	n.Send(Event{Kind: ApplyStarted, Text: "x"})
	n.Close(time.Second)
}

func TestASlowWebhookNeverBlocksSend(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer srv.Close()
	defer close(block)
	n := New(srv.URL, slog.New(slog.NewTextHandler(io.Discard, nil)))
	start := time.Now()
	for i := 0; i < 200; i++ { // more than the queue holds
		n.Send(Event{Kind: DriftDetected, Text: "x"})
	}
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Fatalf("Send blocked for %s behind a stuck webhook", took)
	}
}
