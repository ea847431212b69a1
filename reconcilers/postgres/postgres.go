// Package postgres makes the desired snapshot live in the PostgreSQL database: restore into a scratch database while traffic flows, then swap by rename in about a second, keeping the replaced database for a while.
package postgres

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"settle/desired"
	"settle/reconcilers"
	"settle/snapshot"
)

// Kind is this reconciler's resource kind.
const Kind = "postgres"

// Ops this reconciler applies. Every action carries Args "snapshot",
// "serial" and "scratch" (restore, swap) or "db" (drop-kept), so an apply
// that crashed between restore and swap can be resumed from the plan alone.
const (
	OpRestore  = "restore"           // preflight, restore into scratch, verify, mark staged
	OpSwap     = "swap"              // block, terminate, rename live->kept and scratch->live, mark
	OpDropKept = "drop-kept"         // drop a replaced database past keep_replaced
	OpAllow    = "allow-connections" // a swap cut short left the live database refusing connections
)

// Reconciler drives one live database.
type Reconciler struct {
	Host reconcilers.Host
	D    *desired.Desired
}

// DB is what settle reads of one database.
type DB struct {
	Name      string    `json:"name"`
	Exists    bool      `json:"exists"`
	Marker    Marker    `json:"marker"` // zero when the comment is not settle's
	Comment   string    `json:"comment,omitempty"`
	AllowConn bool      `json:"allow_connections"`
	Size      int64     `json:"size"`
	Owner     string    `json:"owner,omitempty"`
	Locale    Locale    `json:"locale"`
	KeptAt    time.Time `json:"kept_at,omitzero"` // kept databases only
}

// Locale is what a scratch database must share with the live one.
type Locale struct {
	Encoding  string `json:"encoding"`
	Collate   string `json:"collate"`
	Ctype     string `json:"ctype"`
	Provider  string `json:"provider"` // "c" libc, "i" icu
	ICULocale string `json:"icu_locale,omitempty"`
}

// Observed is the live, staged and kept databases, and the desired
// snapshot's file.
type Observed struct {
	At      time.Time      `json:"at"`
	Live    DB             `json:"live"`
	Scratch DB             `json:"scratch"`
	Kept    []DB           `json:"kept"`
	File    *snapshot.File `json:"file,omitempty"`
	FileErr error          `json:"-"`
}

// ScratchName is the one scratch (staged) database of live: fixed, so a
// crash between restore and swap leaves it findable, and its marker says
// which snapshot and serial it holds.
func ScratchName(live string) string { return live + "__settle_next" }

// KeptPrefix starts the name of every database a swap replaced.
func KeptPrefix(live string) string { return live + "__kept_" }

// KeptName is the name a swap at t gives the replaced database.
func KeptName(live string, t time.Time) string {
	return KeptPrefix(live) + t.UTC().Format("20060102150405")
}

// keptTimeFromName reads the swap time back from a kept name, for a kept
// database whose comment someone changed.
func keptTimeFromName(live, name string) time.Time {
	s := strings.TrimPrefix(name, KeptPrefix(live))
	if len(s) > 14 {
		s = s[:14]
	}
	t, err := time.Parse("20060102150405", s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// Want is the marker d asks for on the live database.
func Want(d *desired.Desired) Marker {
	return Marker{Role: RoleLive, Snapshot: d.Postgres.Snapshot, Serial: d.Postgres.RestoreSerial}
}

// KeepFor is keep_replaced, parsed (validation proved it parses).
func KeepFor(d *desired.Desired) time.Duration {
	v, err := time.ParseDuration(d.Postgres.KeepReplaced)
	if err != nil {
		v, _ = time.ParseDuration(desired.DefaultKeepReplaced)
	}
	return v
}

func serialArg(a reconcilers.Action) (int, error) {
	n, err := strconv.Atoi(a.Args["serial"])
	if err != nil {
		return 0, fmt.Errorf("postgres %s: bad serial arg %q", a.Op, a.Args["serial"])
	}
	return n, nil
}
