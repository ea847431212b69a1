package postgres

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Roles a settle marker gives a database.
const (
	RoleLive      = "snapshot"  // holds the snapshot, swapped in (or adopted)
	RoleStaged    = "staged"    // scratch: restored and verified, ready to swap
	RoleRestoring = "restoring" // scratch: restore under way or crashed
	RoleKept      = "kept"      // replaced by a swap; every write since its snapshot
)

// Marker is settle's note on a database, kept in its COMMENT so it travels
// with renames and needs no table inside the user's data:
//
//	settle:snapshot=ID serial=N swapped_at=RFC3339
//	settle:staged=ID serial=N staged_at=RFC3339
//	settle:kept=ID serial=N kept_at=RFC3339
type Marker struct {
	Role     string    `json:"role,omitempty"`
	Snapshot string    `json:"snapshot,omitempty"`
	Serial   int       `json:"serial"`
	At       time.Time `json:"at,omitzero"`
	How      string    `json:"how,omitempty"` // swapped, adopted (live only)
}

// Same reports whether m holds the same snapshot and serial as o.
func (m Marker) Same(o Marker) bool { return m.Snapshot == o.Snapshot && m.Serial == o.Serial }

// IsZero reports whether m is no settle marker at all.
func (m Marker) IsZero() bool { return m.Role == "" }

func (m Marker) String() string {
	if m.IsZero() {
		return "no settle marker"
	}
	return fmt.Sprintf("%s (serial %d)", m.Snapshot, m.Serial)
}

func atKey(m Marker) string {
	switch m.Role {
	case RoleLive:
		if m.How == "adopted" {
			return "adopted_at"
		}
		return "swapped_at"
	case RoleStaged:
		return "staged_at"
	case RoleKept:
		return "kept_at"
	}
	return "started_at"
}

// Format renders m as a comment. Its parts are validated snapshot IDs,
// digits and a timestamp, so it never needs more than doubled quotes.
func (m Marker) Format() string {
	return fmt.Sprintf("settle:%s=%s serial=%d %s=%s", m.Role, m.Snapshot, m.Serial, atKey(m), m.At.UTC().Format(time.RFC3339))
}

var markerRe = regexp.MustCompile(`^settle:(snapshot|staged|restoring|kept)=(\S+)((?: [a-z_]+=\S+)*)$`)

// ParseMarker reads a database comment; ok is false when it is not settle's.
func ParseMarker(comment string) (Marker, bool) {
	g := markerRe.FindStringSubmatch(strings.TrimSpace(comment))
	if g == nil {
		return Marker{}, false
	}
	m := Marker{Role: g[1], Snapshot: g[2]}
	for _, kv := range strings.Fields(g[3]) {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "serial":
			n, err := strconv.Atoi(v)
			if err != nil {
				return Marker{}, false
			}
			m.Serial = n
		case "swapped_at", "adopted_at", "staged_at", "kept_at", "started_at":
			m.At, _ = time.Parse(time.RFC3339, v)
			if k == "swapped_at" || k == "adopted_at" {
				m.How = strings.TrimSuffix(k, "_at")
			}
		}
	}
	return m, true
}

// quoteLiteral quotes s as an SQL string literal. COMMENT is a utility
// statement and takes no bind parameters; standard_conforming_strings
// (on since 9.1, and checked at connect) makes doubling quotes enough.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
