package state

import (
	"encoding/json"
	"os"
	"path/filepath"
	"time"

	"settle/reconcilers"
)

// Status is STATE_DIR/status.json: what the agent last saw and did.
type Status struct {
	PID       int              `json:"pid"`
	Mode      string           `json:"mode"`
	StartedAt time.Time        `json:"started_at"`
	UpdatedAt time.Time        `json:"updated_at"`
	File      string           `json:"file"`
	Phase     string           `json:"phase"` // idle | applying | invalid | failed | held | converged | drifted
	Message   string           `json:"message,omitempty"`
	Seen      Gen              `json:"seen"`                 // last generation read from the file
	Applied   Gen              `json:"applied"`              // last generation that converged
	Previous  Gen              `json:"previous"`             // the one converged to before it
	Held      string           `json:"held,omitempty"`       // generation that failed analysis; not retried until the file changes
	LastError string           `json:"last_error,omitempty"` // of the last pass
	NextRetry time.Time        `json:"next_retry,omitempty"`
	Resources []ResourceStatus `json:"resources"`
	// AppliedWants is each resource's desired value at the last
	// convergence; plan uses it to tell drift from intended change.
	AppliedWants map[string]string `json:"applied_wants,omitempty"`
	// Verification is the checklist run after the last apply.
	Verification []Check `json:"verification,omitempty"`
}

// Check is one verification result.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// Gen identifies a desired state.
type Gen struct {
	Generation string    `json:"generation,omitempty"`
	Commit     string    `json:"commit,omitempty"`
	Dirty      bool      `json:"dirty,omitempty"`
	Active     string    `json:"active,omitempty"`
	Snapshot   string    `json:"snapshot,omitempty"`
	At         time.Time `json:"at,omitempty"`
}

// ResourceStatus is one resource as last observed.
type ResourceStatus struct {
	Kind         string    `json:"kind"`
	Name         string    `json:"name"`
	Status       string    `json:"status"`
	Cause        string    `json:"cause,omitempty"`
	Desired      string    `json:"desired"`
	Actual       string    `json:"actual"`
	Reason       string    `json:"reason,omitempty"`
	LastObserved time.Time `json:"last_observed"`
	LastError    string    `json:"last_error,omitempty"`
}

// FromResource copies a planned resource into status form.
func FromResource(r reconcilers.Resource, at time.Time) ResourceStatus {
	return ResourceStatus{Kind: r.Kind, Name: r.Name, Status: string(r.Status), Cause: r.Cause,
		Desired: r.Desired, Actual: r.Actual, Reason: reconcilers.Redact(r.Reason), LastObserved: at.UTC()}
}

// WriteStatus replaces status.json atomically.
func WriteStatus(dir string, s *Status) error {
	s.UpdatedAt = time.Now().UTC()
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return reconcilers.WriteFileAtomic(filepath.Join(dir, "status.json"), []byte(reconcilers.Redact(string(b))+"\n"), 0o600)
}

// ReadStatus loads status.json.
func ReadStatus(dir string) (*Status, error) {
	b, err := os.ReadFile(filepath.Join(dir, "status.json"))
	if err != nil {
		return nil, err
	}
	var s Status
	return &s, json.Unmarshal(b, &s)
}
