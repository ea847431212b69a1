// Command restore measures settle's PostgreSQL rollback on a generated database: restore time against pg_restore -j2 by hand, the window the live database refuses connections during a swap, and the swap time of a staged snapshot.
//
//	go run ./bench/restore [-mb 220] [-rounds 3] [-keep]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"settle/desired"
	"settle/e2e/sandbox"
	"settle/reconcilers"
	"settle/reconcilers/postgres"
)

func main() {
	mb := flag.Int("mb", 220, "generate at least this many MB of live database")
	rounds := flag.Int("rounds", 3, "rounds of (pg_restore by hand, settle restore, swap)")
	keep := flag.Bool("keep", false, "leave the sandbox up")
	flag.Parse()
	if err := run(*mb, *rounds, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", reconcilers.Redact(err.Error()))
		os.Exit(1)
	}
}

func run(mb, rounds int, keep bool) error {
	dir, err := os.MkdirTemp("/tmp", "settle-bench-")
	if err != nil {
		return err
	}
	os.Chmod(dir, 0o755)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	sb, err := sandbox.Up(ctx, dir, nil)
	cancel()
	if err != nil {
		return err
	}
	if !keep {
		defer func() { sandbox.Down(dir); os.RemoveAll(dir) }()
	}
	ctx, cancel = context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	os.Setenv("SETTLE_PG_DSN", sb.AdminDSN)
	reconcilers.AddSecretDSN(sb.AdminDSN)
	d, err := desired.Load(sb.DesiredPath)
	if err != nil {
		return err
	}
	r := &postgres.Reconciler{Host: reconcilers.Local{}, D: d}
	admin, err := pgx.Connect(ctx, sb.AdminDSN)
	if err != nil {
		return err
	}
	defer admin.Close(context.Background())

	size, took, err := generate(ctx, dsn(sb, "demo"), int64(mb)<<20)
	if err != nil {
		return err
	}
	fmt.Printf("generated live database demo: %d MB in %s\n", size>>20, took.Round(time.Second))
	if _, err := r.Adopt(ctx, "generated", true); err != nil {
		return err
	}
	t0 := time.Now()
	f, err := r.CreateSnapshot(ctx, "bench", nil)
	if err != nil {
		return err
	}
	fmt.Printf("settle snapshot create: %d MB custom dump in %s\n\n", f.Size>>20, time.Since(t0).Round(100*time.Millisecond))

	var byHand, settle, refused, swaps, blocked []time.Duration
	fmt.Println("swap: total Swap call; blocked: ALLOW_CONNECTIONS false until the renames commit; refused: as a client connecting in a loop saw it")
	for i := 1; i <= rounds; i++ {
		// Both timed restores start after a checkpoint, so neither pays
		// for the other's dirty buffers.
		if _, err := admin.Exec(ctx, "CHECKPOINT"); err != nil {
			return err
		}
		// By hand, as the runbook would: a fresh database, pg_restore -j2.
		t0 = time.Now()
		if _, err := admin.Exec(ctx, "CREATE DATABASE bench_by_hand TEMPLATE template0"); err != nil {
			return err
		}
		cmd := exec.CommandContext(ctx, filepath.Join(sb.PGBinDir, "pg_restore"), "-j2", "--exit-on-error", "-d", dsn(sb, "bench_by_hand"), f.Path)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("pg_restore by hand: %v: %s", err, out)
		}
		byHand = append(byHand, time.Since(t0))
		if _, err := admin.Exec(ctx, "DROP DATABASE bench_by_hand"); err != nil {
			return err
		}

		// settle: preflight, checksum, restore -j2, row-count verify, mark staged.
		if _, err := admin.Exec(ctx, "CHECKPOINT"); err != nil {
			return err
		}
		t0 = time.Now()
		st, err := r.Restore(ctx, "bench", i)
		if err != nil {
			return err
		}
		settle = append(settle, time.Since(t0))

		// The swap of that staged snapshot, with a client connecting in a
		// loop and sessions held open the way an app's pool holds them.
		p, sw, swapTook, err := swapUnderLoad(ctx, r, dsn(sb, "demo"), i)
		if err != nil {
			return err
		}
		refused, swaps, blocked = append(refused, p.window), append(swaps, swapTook), append(blocked, sw.Blocked)
		fmt.Printf("round %d: pg_restore -j2 by hand %6.2fs | settle restore %6.2fs (%d tables verified, %d by count(*)) | swap %4.0fms, blocked %4.0fms, refused %4.0fms (%d of %d connects, one per %.1fms)\n",
			i, byHand[i-1].Seconds(), settle[i-1].Seconds(), st.Verified, st.Counted, ms(swapTook), ms(sw.Blocked), ms(p.window), p.failures, p.attempts, ms(p.every))
		if _, err := admin.Exec(ctx, "DROP DATABASE "+pgx.Identifier{sw.Kept}.Sanitize()); err != nil {
			return err
		}
	}
	ratio := med(settle).Seconds() / med(byHand).Seconds()
	var paired []time.Duration // per-round ratios, scaled by 1000 to reuse med
	for i := range settle {
		paired = append(paired, time.Duration(1000*settle[i].Seconds()/byHand[i].Seconds()))
	}
	fmt.Printf("\nmedians over %d rounds (PostgreSQL 15 sandbox, fsync off, %d MB live database, %d MB dump):\n", rounds, size>>20, f.Size>>20)
	verdict(fmt.Sprintf("restore: settle %.2fs vs pg_restore -j2 by hand %.2fs, ratio %.3f (median of per-round ratios %.3f)",
		med(settle).Seconds(), med(byHand).Seconds(), ratio, float64(med(paired))/1000), "≤ 1.15", ratio <= 1.15)
	verdict(fmt.Sprintf("connections refused during the swap: %.0f ms (max %.0f ms)", ms(med(refused)), ms(slices.Max(refused))), "≤ 1 s", slices.Max(refused) <= time.Second)
	verdict(fmt.Sprintf("swap of a staged snapshot: %.0f ms (max %.0f ms)", ms(med(swaps)), ms(slices.Max(swaps))), "≤ 2 s", slices.Max(swaps) <= 2*time.Second)
	if keep {
		fmt.Printf("sandbox left up in %s\n", dir)
	}
	return nil
}

func verdict(what, target string, ok bool) {
	v := "PASS"
	if !ok {
		v = "FAIL"
	}
	fmt.Printf("  %-90s target %-6s %s\n", what, target, v)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func med(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func dsn(sb *sandbox.Sandbox, db string) string {
	return strings.Replace(sb.AdminDSN, "/postgres?", "/"+db+"?", 1)
}

// generate grows the leads table's neighbour until the database holds at
// least want bytes: rows of mixed text and numbers, with an index, so the
// restore has data to copy and an index to build.
func generate(ctx context.Context, dsn string, want int64) (int64, time.Duration, error) {
	start := time.Now()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, `CREATE TABLE events (id bigserial PRIMARY KEY, account int NOT NULL, kind text NOT NULL,
		payload text NOT NULL, at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return 0, 0, err
	}
	for {
		var size int64
		if err := c.QueryRow(ctx, "SELECT pg_database_size(current_database())").Scan(&size); err != nil {
			return 0, 0, err
		}
		if size >= want {
			_, err := c.Exec(ctx, "CREATE INDEX events_account ON events (account, at); ANALYZE events")
			if err == nil {
				err = c.QueryRow(ctx, "SELECT pg_database_size(current_database())").Scan(&size)
			}
			return size, time.Since(start), err
		}
		if _, err := c.Exec(ctx, `INSERT INTO events (account, kind, payload)
			SELECT (random() * 100000)::int, (ARRAY['view','click','signup','purchase'])[1 + (i % 4)],
			       md5(random()::text) || md5(i::text) || repeat(' lorem ipsum dolor', 6) || md5((i * 7)::text)
			FROM generate_series(1, 200000) AS i`); err != nil {
			return 0, 0, err
		}
	}
}

// swapUnderLoad swaps in the staged snapshot while a client opens a new
// connection to the live name in a tight loop and a few idle sessions
// sit on it. It returns the span from the first refused connection to
// the last one.
func swapUnderLoad(ctx context.Context, r *postgres.Reconciler, dsn string, serial int) (probe, postgres.Swapped, time.Duration, error) {
	for range 4 {
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return probe{}, postgres.Swapped{}, 0, err
		}
		defer c.Close(context.Background())
	}
	var (
		mu                  sync.Mutex
		firstFail, lastFail time.Time
		attempts, failures  int
		stop                = make(chan struct{})
		done                = make(chan struct{})
	)
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			t := time.Now()
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			c, err := pgx.Connect(cctx, dsn)
			if err == nil {
				err = c.QueryRow(cctx, "SELECT 1").Scan(new(int))
				c.Close(context.Background())
			}
			cancel()
			mu.Lock()
			attempts++
			if err != nil {
				failures++
				if firstFail.IsZero() {
					firstFail = t
				}
				lastFail = time.Now()
			}
			mu.Unlock()
		}
	}()
	time.Sleep(300 * time.Millisecond)
	t0 := time.Now()
	sw, err := r.Swap(ctx, "bench", serial)
	took := time.Since(t0)
	time.Sleep(300 * time.Millisecond)
	close(stop)
	<-done
	mu.Lock()
	defer mu.Unlock()
	p := probe{attempts: attempts, failures: failures, every: (600*time.Millisecond + took) / time.Duration(max(attempts, 1))}
	if err != nil {
		return p, sw, took, err
	}
	if attempts < 10 {
		return p, sw, took, fmt.Errorf("the probing client made only %d attempts", attempts)
	}
	if failures > 0 {
		p.window = lastFail.Sub(firstFail)
	}
	return p, sw, took, nil
}

// probe is what the connecting client saw during one swap.
type probe struct {
	window             time.Duration // first refused attempt's start to the last one's end
	attempts, failures int
	every              time.Duration // one attempt per this, on average
}
