package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"settle/reconcilers"
)

// Apply performs one action of this reconciler's plan.
func (r *Reconciler) Apply(ctx context.Context, a reconcilers.Action) error {
	switch a.Op {
	case OpFlush:
		_, err := r.Flush(ctx, a.Args["marker"])
		return err
	case OpMark:
		return r.mark(ctx, a.Args["marker"])
	}
	return fmt.Errorf("redis: unknown action %q", a.Op)
}

// mark records that the cache belongs to want without flushing it, and only
// if no marker appeared meanwhile (SET NX): a marker someone else set is
// drift for the next pass, not something to overwrite blindly.
func (r *Reconciler) mark(ctx context.Context, want string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := r.client()
	if err != nil {
		return err
	}
	defer c.Close()
	key := MarkerKey(r.D)
	if err := c.SetNX(ctx, key, want, 0).Err(); err != nil {
		return r.explain("set marker "+key, "SET", err)
	}
	return nil
}

// Flush empties what the config names and sets the marker to want, unless
// the marker already says want (an apply run again, or resumed after a
// crash, flushes nothing). It reports whether it flushed.
func (r *Reconciler) Flush(ctx context.Context, want string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	c, err := r.client()
	if err != nil {
		return false, err
	}
	defer c.Close()
	key := MarkerKey(r.D)
	cur, err := c.Get(ctx, key).Result()
	if err != nil && !errors.Is(err, goredis.Nil) {
		return false, r.explain("read marker "+key, "GET", err)
	}
	if err == nil && cur == want {
		return false, nil
	}
	if p := r.D.Redis.KeyPrefix; p != "" {
		if err := r.unlinkPrefix(ctx, c, p); err != nil {
			return false, err
		}
	} else {
		res, err := c.Do(ctx, "FLUSHDB", "ASYNC").Text()
		if err != nil {
			return false, r.explain(fmt.Sprintf("flush db %d", r.D.Redis.DB), "FLUSHDB", err)
		}
		if res != "OK" {
			return false, fmt.Errorf("redis %s: FLUSHDB ASYNC answered %q, not OK", r.D.Redis.Addr, res)
		}
	}
	if res, err := c.Set(ctx, key, want, 0).Result(); err != nil || res != "OK" {
		if err == nil {
			err = fmt.Errorf("answered %q", res)
		}
		return true, r.explain("set marker "+key, "SET", err)
	}
	return true, nil
}

// unlinkPrefix removes prefix* keys in batches. SCAN may return a key
// twice; UNLINK of a gone key is harmless.
func (r *Reconciler) unlinkPrefix(ctx context.Context, c *goredis.Client, prefix string) error {
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, prefix+"*", 1000).Result()
		if err != nil {
			return r.explain("scan "+prefix+"*", "SCAN", err)
		}
		var mine []string
		for _, k := range keys {
			if strings.HasPrefix(k, prefix) {
				mine = append(mine, k)
			}
		}
		if len(mine) > 0 {
			if err := c.Unlink(ctx, mine...).Err(); err != nil {
				return r.explain("unlink "+prefix+"* keys", "UNLINK", err)
			}
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}
