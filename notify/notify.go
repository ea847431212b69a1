// Package notify posts settle's events to a team chat webhook (Slack-
// compatible JSON), in the background: a slow or dead webhook never blocks
// or slows reconciling.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"settle/reconcilers"
)

// Event kinds.
const (
	ApplyStarted   = "apply_started"
	ApplySucceeded = "apply_succeeded"
	ApplyFailed    = "apply_failed"
	DriftDetected  = "drift_detected"
	Rollback       = "rollback_detected"
	Held           = "generation_held"
)

// Event is one notification. Text is what people read; the rest is for
// machines (Slack ignores unknown fields).
type Event struct {
	Kind       string    `json:"kind"`
	Text       string    `json:"text"`
	Host       string    `json:"host,omitempty"`
	Generation string    `json:"generation,omitempty"`
	Commit     string    `json:"commit,omitempty"`
	Time       time.Time `json:"time"`
}

// Notifier delivers events to one URL with bounded retries.
type Notifier struct {
	url     string
	log     *slog.Logger
	queue   chan Event
	client  *http.Client
	retries int
	backoff time.Duration
	done    chan struct{}
}

// New starts a notifier; a nil Notifier (no URL configured) drops events.
func New(url string, log *slog.Logger) *Notifier {
	if url == "" {
		return nil
	}
	reconcilers.AddSecret(url) // webhook URLs are bearer credentials
	n := &Notifier{url: url, log: log, queue: make(chan Event, 64),
		client: &http.Client{Timeout: 5 * time.Second}, retries: 3, backoff: time.Second, done: make(chan struct{})}
	go n.loop()
	return n
}

// Send queues e; when the queue is full the event is dropped and logged.
func (n *Notifier) Send(e Event) {
	if n == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	e.Text = reconcilers.Redact(e.Text)
	select {
	case n.queue <- e:
	default:
		n.log.Warn("notification queue full; dropped", "kind", e.Kind)
	}
}

// Close delivers what is queued, waiting at most d.
func (n *Notifier) Close(d time.Duration) {
	if n == nil {
		return
	}
	close(n.queue)
	select {
	case <-n.done:
	case <-time.After(d):
	}
}

func (n *Notifier) loop() {
	defer close(n.done)
	for e := range n.queue {
		body, _ := json.Marshal(e)
		var err error
		for i := 0; i < n.retries; i++ {
			if err = n.post(body); err == nil {
				break
			}
			time.Sleep(n.backoff << i)
		}
		if err != nil {
			n.log.Warn("notification not delivered", "kind", e.Kind, "err", reconcilers.Redact(err.Error()))
		}
	}
}

func (n *Notifier) post(body []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook answered %d", resp.StatusCode)
	}
	return nil
}
