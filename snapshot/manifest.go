package snapshot

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"settle/reconcilers"
)

// Manifest is what settle records beside each snapshot it creates, so a
// restore can prove it got the same bytes and the same rows.
type Manifest struct {
	ID            string           `json:"id"`
	File          string           `json:"file"` // base name of the dump
	Format        Format           `json:"format"`
	SHA256        string           `json:"sha256"`
	Size          int64            `json:"size"`
	ServerVersion string           `json:"server_version"`
	Database      string           `json:"database"`
	Created       time.Time        `json:"created"`
	Rows          map[string]int64 `json:"rows"` // "schema.table" -> count at the dump's snapshot
	Generation    string           `json:"generation,omitempty"`
	Commit        string           `json:"commit,omitempty"`
	Dirty         bool             `json:"dirty,omitempty"`
}

// ReadManifest reads ID.json from dir; a missing file wraps fs.ErrNotExist.
func ReadManifest(ctx context.Context, h reconcilers.Host, dir, id string) (*Manifest, error) {
	p := ManifestPath(dir, id)
	b, err := h.ReadFile(ctx, p)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", p, err)
	}
	if m.SHA256 == "" || m.Size <= 0 {
		return nil, fmt.Errorf("read manifest %s: no sha256 or size; remove it or recreate the snapshot", p)
	}
	return &m, nil
}

// WriteManifest writes ID.json atomically.
func WriteManifest(ctx context.Context, h reconcilers.Host, dir string, m *Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := h.WriteFile(ctx, ManifestPath(dir, m.ID), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write manifest of %s: %w", m.ID, err)
	}
	return nil
}
