package reconcilers

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Probe is the answer of an HTTP health or verify URL.
type Probe struct {
	Code int
	Body []byte // first 4 KiB
	Err  error
	Took time.Duration
}

// OK is a 200 answer.
func (p Probe) OK() bool { return p.Err == nil && p.Code == http.StatusOK }

func (p Probe) String() string {
	if p.Err != nil {
		return Redact(p.Err.Error())
	}
	return fmt.Sprintf("HTTP %d", p.Code)
}

// Get fetches url through the host's dialer, without keep-alive so every
// probe sees the current server, with timeout.
func Get(ctx context.Context, h Host, url string, timeout time.Duration) Probe {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	c := &http.Client{Transport: &http.Transport{DialContext: h.DialContext, DisableKeepAlives: true}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Probe{Err: err}
	}
	req.Header.Set("User-Agent", "settle")
	resp, err := c.Do(req)
	if err != nil {
		return Probe{Err: err, Took: time.Since(start)}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return Probe{Code: resp.StatusCode, Body: body, Took: time.Since(start)}
}
