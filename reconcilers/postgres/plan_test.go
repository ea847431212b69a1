package postgres

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"settle/desired"
	"settle/reconcilers"
	"settle/snapshot"
)

func TestPlan(t *testing.T) {
	now := time.Date(2025, 11, 1, 12, 0, 0, 0, time.UTC)
	d := func(snap string, serial int) *desired.Desired {
		return &desired.Desired{Path: "/etc/settle/desired.toml", Postgres: &desired.Postgres{
			Database: "app", Snapshot: snap, RestoreSerial: serial, KeepReplaced: "168h", SnapshotDir: "/b"}}
	}
	live := func(snap string, serial int) DB {
		return DB{Name: "app", Exists: true, AllowConn: true, Marker: Marker{Role: RoleLive, Snapshot: snap, Serial: serial, How: "swapped"}}
	}
	file := &snapshot.File{ID: "new", Format: snapshot.Custom, Size: 5 << 20}
	kept := func(age time.Duration) DB {
		at := now.Add(-age)
		return DB{Name: KeptName("app", at), Exists: true, KeptAt: at, Marker: Marker{Role: RoleKept, Snapshot: "old", At: at}}
	}
	tests := []struct {
		name      string
		d         *desired.Desired
		o         Observed
		status    reconcilers.Status
		ops       string
		reasonHas string
		actualHas string
	}{
		{"unknown marker is never restored over", d("new", 0), Observed{Live: DB{Name: "app", Exists: true, Comment: "prod db"}, File: file},
			reconcilers.Unknown, "", "settle snapshot adopt -f /etc/settle/desired.toml new", "unknown"},
		{"same snapshot is in sync", d("old", 0), Observed{Live: live("old", 0)}, reconcilers.InSync, "", "", "snapshot old (serial 0) live"},
		{"same snapshot needs no file", d("old", 0), Observed{Live: live("old", 0), FileErr: snapshot.ErrNotFound}, reconcilers.InSync, "", "", ""},
		{"new snapshot restores then swaps", d("new", 0), Observed{Live: live("old", 0), File: file}, reconcilers.Drifted, "restore swap", "", ""},
		{"serial bump restores the same snapshot again", d("old", 1), Observed{Live: live("old", 0), File: file}, reconcilers.Drifted, "restore swap", "", ""},
		{"staged scratch skips the restore", d("new", 0), Observed{Live: live("old", 0), File: file,
			Scratch: DB{Name: "app__settle_next", Exists: true, Marker: Marker{Role: RoleStaged, Snapshot: "new"}}},
			reconcilers.Drifted, "swap", "", "staged"},
		{"staged with another serial is restored again", d("new", 2), Observed{Live: live("old", 0), File: file,
			Scratch: DB{Name: "app__settle_next", Exists: true, Marker: Marker{Role: RoleStaged, Snapshot: "new", Serial: 1}}},
			reconcilers.Drifted, "restore swap", "", ""},
		{"half-restored scratch is not staged", d("new", 0), Observed{Live: live("old", 0), File: file,
			Scratch: DB{Name: "app__settle_next", Exists: true, Marker: Marker{Role: RoleRestoring, Snapshot: "new"}}},
			reconcilers.Drifted, "restore swap", "", ""},
		{"missing file fails the plan", d("new", 0), Observed{Live: live("old", 0), FileErr: errors.New("snapshot not found: no new.dump")},
			reconcilers.Failed, "", "no new.dump", ""},
		{"missing live database is restored", d("new", 0), Observed{Live: DB{Name: "app"}, File: file}, reconcilers.Drifted, "restore swap", "", "missing"},
		{"expired kept database is dropped", d("old", 0), Observed{Live: live("old", 0), Kept: []DB{kept(200 * time.Hour), kept(time.Hour)}},
			reconcilers.Drifted, "drop-kept", "", ""},
		{"kept database within retention stays", d("old", 0), Observed{Live: live("old", 0), Kept: []DB{kept(167 * time.Hour)}},
			reconcilers.InSync, "", "", ""},
		{"kept database of unknown age is never dropped", d("old", 0), Observed{Live: live("old", 0), Kept: []DB{{Name: "app__kept_x", Exists: true}}},
			reconcilers.InSync, "", "", "never dropped"},
		{"a swap cut short left the live database refusing connections", d("old", 0),
			Observed{Live: DB{Name: "app", Exists: true, Marker: Marker{Role: RoleLive, Snapshot: "old", How: "swapped"}}},
			reconcilers.Drifted, "allow-connections", "", "refusing connections"},
		{"unmarked kept-looking database is never dropped", d("old", 0),
			Observed{Live: live("old", 0), Kept: []DB{{Name: KeptName("app", time.Now().Add(-500*time.Hour)), Exists: true, KeptAt: time.Now().Add(-500 * time.Hour)}}},
			reconcilers.InSync, "", "", "not settle's"},
		{"restore, swap, then drop in order", d("new", 0), Observed{Live: live("old", 0), File: file, Kept: []DB{kept(300 * time.Hour)}},
			reconcilers.Drifted, "restore swap drop-kept", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.At = now
			res := Plan(tt.d, &tt.o)
			var ops []string
			for _, a := range res.Actions {
				ops = append(ops, a.Op)
				if a.Kind != Kind || a.Resource != "app" {
					t.Errorf("action %+v: wrong kind or resource", a)
				}
			}
			if got := strings.Join(ops, " "); got != tt.ops || res.Status != tt.status {
				t.Fatalf("got %s [%s], want %s [%s]; actual %q reason %q", res.Status, got, tt.status, tt.ops, res.Actual, res.Reason)
			}
			if res.Name != "app" || !strings.Contains(res.Reason, tt.reasonHas) || !strings.Contains(res.Actual, tt.actualHas) {
				t.Fatalf("name %q actual %q reason %q; want actual with %q, reason with %q", res.Name, res.Actual, res.Reason, tt.actualHas, tt.reasonHas)
			}
			for _, a := range res.Actions {
				switch a.Op {
				case OpRestore, OpSwap:
					if a.Args["snapshot"] != tt.d.Postgres.Snapshot || a.Args["scratch"] != "app__settle_next" || a.Args["serial"] == "" {
						t.Errorf("%s args %v", a.Op, a.Args)
					}
				case OpDropKept:
					if !strings.HasPrefix(a.Args["db"], "app__kept_") {
						t.Errorf("drop-kept args %v", a.Args)
					}
				}
			}
		})
	}
}

func TestMarkerRoundTrip(t *testing.T) {
	at := time.Date(2025, 10, 31, 2, 0, 0, 0, time.UTC)
	for _, m := range []Marker{
		{Role: RoleLive, Snapshot: "cep_20251031_020000", Serial: 3, At: at, How: "swapped"},
		{Role: RoleLive, Snapshot: "a.b-c", At: at, How: "adopted"},
		{Role: RoleStaged, Snapshot: "x", Serial: 1, At: at},
		{Role: RoleKept, Snapshot: "unknown", At: at},
	} {
		got, ok := ParseMarker(m.Format())
		if !ok || got != m {
			t.Errorf("ParseMarker(%q) = %+v, %v; want %+v", m.Format(), got, ok, m)
		}
	}
	for _, c := range []string{"", "prod database", "settle:snapshot=", "settle:other=x serial=1", "settle:snapshot=x serial=one"} {
		if _, ok := ParseMarker(c); ok {
			t.Errorf("ParseMarker(%q) accepted", c)
		}
	}
}

func TestScanNeeds(t *testing.T) {
	sql := `ALTER TABLE public.leads OWNER TO demo_app;
GRANT SELECT ON TABLE public.leads TO "Report Reader", PUBLIC;
REVOKE ALL ON SCHEMA public FROM old_admin;
CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA public;
CREATE EXTENSION "uuid-ossp";
COPY public.notes (body) FROM stdin;
`
	n := scanNeeds(sql, false)
	if got := strings.Join(n.roles, ","); got != "Report Reader,demo_app,old_admin" {
		t.Errorf("roles = %s", got)
	}
	if got := strings.Join(n.extensions, ","); got != "pgcrypto,uuid-ossp" {
		t.Errorf("extensions = %s", got)
	}
	if n = scanNeeds(sql, true); strings.Join(n.roles, ",") != "Report Reader,old_admin" {
		t.Errorf("no_owner roles = %v", n.roles)
	}
	if !scanNeeds("\\connect demo\n", false).connects || !scanNeeds("CREATE DATABASE demo WITH TEMPLATE = template0;\n", false).connects {
		t.Errorf("a dump that connects elsewhere was not noticed")
	}
}

func TestDropOwners(t *testing.T) {
	in := "CREATE TABLE t (a text);\nALTER TABLE public.t OWNER TO ghost;\nCOPY public.t (a) FROM stdin;\nALTER TABLE x OWNER TO y;\n\\.\nALTER SEQUENCE public.s OWNER TO ghost;\nSELECT 1;\n"
	var b strings.Builder
	if _, err := io.Copy(&b, dropOwners(strings.NewReader(in))); err != nil {
		t.Fatal(err)
	}
	want := "CREATE TABLE t (a text);\nCOPY public.t (a) FROM stdin;\nALTER TABLE x OWNER TO y;\n\\.\nSELECT 1;\n"
	if b.String() != want {
		t.Errorf("dropOwners:\n%s\nwant:\n%s", b.String(), want)
	}
}
