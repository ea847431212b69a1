// Package redis keeps the Redis cache matched to the live PostgreSQL snapshot: when the snapshot changes, it flushes only what the config names and marks the cache with the new snapshot.
package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"settle/desired"
	"settle/reconcilers"
)

// Kind is this reconciler's resource kind.
const Kind = "redis"

// OpFlush flushes the configured db (FLUSHDB ASYNC) or the key_prefix keys
// (SCAN + UNLINK), then sets the marker. Args: "marker" (the value to set),
// "scope" ("db" or "prefix"), "prefix".
const OpFlush = "flush"

// OpMark sets the marker without flushing: the first time settle sees a
// cache whose database already holds the wanted snapshot, so the cache
// belongs to it (and the sessions in it stay).
const OpMark = "mark"

// Reconciler drives one Redis db.
type Reconciler struct {
	Host reconcilers.Host
	D    *desired.Desired
}

// Observed is the cache's marker.
type Observed struct {
	At        time.Time `json:"at"`
	Managed   bool      `json:"managed"` // false: flush_on_snapshot_change is off, nothing was read
	Marker    string    `json:"marker,omitempty"`
	HasMarker bool      `json:"has_marker"`
}

// MarkerKey is the key that names the snapshot the cache belongs to. With
// key_prefix, each prefix has its own, since each is flushed on its own.
func MarkerKey(d *desired.Desired) string {
	if p := d.Redis.KeyPrefix; p != "" {
		return "settle:snapshot:" + p
	}
	return "settle:snapshot"
}

// WantMarker is the marker value for d's snapshot and serial: a serial bump
// restores the database again, so the cache is flushed again too.
func WantMarker(d *desired.Desired) string {
	return d.Postgres.Snapshot + " serial=" + strconv.Itoa(d.Postgres.RestoreSerial)
}

// Name is the resource name: addr/db.
func Name(d *desired.Desired) string { return d.Redis.Addr + "/" + strconv.Itoa(d.Redis.DB) }

func managed(d *desired.Desired) bool { return d.Redis.FlushOnSnapshotChange && d.Postgres != nil }

// Observe reads the marker. With flush_on_snapshot_change off settle owns
// nothing in this cache and does not connect.
func (r *Reconciler) Observe(ctx context.Context) (*Observed, error) {
	o := &Observed{At: time.Now().UTC(), Managed: managed(r.D)}
	if !o.Managed {
		return o, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := r.client()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	v, err := c.Get(ctx, MarkerKey(r.D)).Result()
	switch {
	case errors.Is(err, goredis.Nil):
	case err != nil:
		return nil, r.explain("read marker "+MarkerKey(r.D), "GET", err)
	default:
		o.Marker, o.HasMarker = v, true
	}
	return o, nil
}

// client connects through the host's dialer, with no retries: a flush is
// never sent twice behind settle's back.
func (r *Reconciler) client() (*goredis.Client, error) {
	rd := r.D.Redis
	var pw string
	if rd.PasswordEnv != "" {
		pw = os.Getenv(rd.PasswordEnv)
		if pw == "" {
			return nil, fmt.Errorf("redis %s: environment variable %s is empty or unset; export the password in settle's environment (redis.password_env names it)", rd.Addr, rd.PasswordEnv)
		}
		reconcilers.AddSecret(pw)
	}
	return goredis.NewClient(&goredis.Options{
		Addr:     rd.Addr,
		Password: pw,
		DB:       rd.DB,
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return r.Host.DialContext(ctx, network, addr)
		},
		Protocol:              2, // plain AUTH + SELECT: the replies old servers and proxies give too
		DisableIdentity:       true,
		MaxRetries:            -1,
		PoolSize:              1,
		DialTimeout:           5 * time.Second,
		ReadTimeout:           10 * time.Second,
		WriteTimeout:          10 * time.Second,
		ContextTimeoutEnabled: true,
	}), nil
}

// explain turns the server's refusals into what the operator must do.
// Redis never echoes a password in these replies; Redact is the backstop.
func (r *Reconciler) explain(doing, cmd string, err error) error {
	rd := r.D.Redis
	msg := reconcilers.Redact(err.Error())
	var e error
	switch {
	case strings.HasPrefix(msg, "NOAUTH"):
		e = fmt.Errorf("the server requires a password (NOAUTH); set redis.password_env and export that variable")
	case strings.HasPrefix(msg, "WRONGPASS"), strings.Contains(msg, "invalid password"):
		e = fmt.Errorf("the server rejected the password from $%s (WRONGPASS); check the variable against requirepass or the ACL user", rd.PasswordEnv)
	case strings.Contains(msg, "called without any password configured"):
		e = fmt.Errorf("$%s holds a password but the server has none; unset redis.password_env or set requirepass", rd.PasswordEnv)
	case strings.HasPrefix(msg, "NOPERM"):
		e = fmt.Errorf("the server's ACL does not allow %s for this user (NOPERM); grant it (ACL SETUSER ... +%s)", cmd, strings.ToLower(cmd))
	case strings.HasPrefix(msg, "READONLY"):
		e = fmt.Errorf("the server is a read-only replica (READONLY); point redis.addr at the primary")
	case strings.Contains(msg, "unknown command"):
		e = fmt.Errorf("the server does not know %s: it is renamed or disabled (rename-command in redis.conf); enable it, or flush by key_prefix instead", cmd)
	default:
		return fmt.Errorf("redis %s: %s: %s", rd.Addr, doing, msg)
	}
	return fmt.Errorf("redis %s: %s: %w", rd.Addr, doing, e)
}
