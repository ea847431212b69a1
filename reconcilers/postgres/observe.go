package postgres

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"settle/snapshot"
)

// Observe reads the live, scratch and kept databases and looks for the
// desired snapshot's file. It changes nothing.
func (r *Reconciler) Observe(ctx context.Context) (*Observed, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := r.connect(ctx, "")
	if err != nil {
		return nil, err
	}
	defer c.Close(context.Background())
	o, err := r.observeDBs(ctx, c)
	if err != nil {
		return nil, err
	}
	f, err := snapshot.Find(ctx, r.Host, r.D.Postgres.SnapshotDir, r.D.Postgres.Snapshot)
	if err != nil {
		o.FileErr = err
	} else {
		o.File = &f
	}
	return o, nil
}

func (r *Reconciler) observeDBs(ctx context.Context, c *pgx.Conn) (*Observed, error) {
	live := r.D.Postgres.Database
	o := &Observed{At: time.Now().UTC(), Live: DB{Name: live}, Scratch: DB{Name: ScratchName(live)}}
	dbs, err := listDBs(ctx, c)
	if err != nil {
		return nil, err
	}
	for _, d := range dbs {
		switch {
		case d.Name == live:
			o.Live = d
		case d.Name == ScratchName(live):
			o.Scratch = d
		case strings.HasPrefix(d.Name, KeptPrefix(live)):
			d.KeptAt = d.Marker.At
			if d.Marker.Role != RoleKept || d.KeptAt.IsZero() {
				d.KeptAt = keptTimeFromName(live, d.Name)
			}
			o.Kept = append(o.Kept, d)
		}
	}
	sort.Slice(o.Kept, func(i, j int) bool { return o.Kept[i].Name < o.Kept[j].Name })
	return o, nil
}

// listDBs reads every database with its comment, locale and owner.
func listDBs(ctx context.Context, c *pgx.Conn) ([]DB, error) {
	icu := "''"
	switch v := c.PgConn().ParameterStatus("server_version"); {
	case snapshot.Major(v) >= 17:
		icu = "coalesce(d.datlocale, '')"
	case snapshot.Major(v) >= 15:
		icu = "coalesce(d.daticulocale, '')"
	}
	provider := "'c'"
	if snapshot.Major(c.PgConn().ParameterStatus("server_version")) >= 15 {
		provider = "d.datlocprovider::text"
	}
	rows, err := c.Query(ctx, `SELECT d.datname, coalesce(shobj_description(d.oid, 'pg_database'), ''),
		d.datallowconn, pg_database_size(d.oid), pg_get_userbyid(d.datdba),
		pg_encoding_to_char(d.encoding), d.datcollate, d.datctype, `+provider+`, `+icu+`
		FROM pg_database d WHERE NOT d.datistemplate`)
	if err != nil {
		return nil, fmt.Errorf("list databases: %w", err)
	}
	var out []DB
	for rows.Next() {
		d := DB{Exists: true}
		l := &d.Locale
		if err := rows.Scan(&d.Name, &d.Comment, &d.AllowConn, &d.Size, &d.Owner,
			&l.Encoding, &l.Collate, &l.Ctype, &l.Provider, &l.ICULocale); err != nil {
			return nil, fmt.Errorf("list databases: %w", err)
		}
		d.Marker, _ = ParseMarker(d.Comment)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list databases: %w", err)
	}
	return out, nil
}
