package redis

import (
	"strings"
	"testing"

	"settle/desired"
)

func TestPlan(t *testing.T) {
	d := func(flush bool, prefix string) *desired.Desired {
		return &desired.Desired{
			Postgres: &desired.Postgres{Database: "app", Snapshot: "snap2", RestoreSerial: 1},
			Redis:    &desired.Redis{Addr: "127.0.0.1:6379", DB: 3, FlushOnSnapshotChange: flush, KeyPrefix: prefix},
		}
	}
	tests := []struct {
		name, scope string
		d           *desired.Desired
		o           Observed
		flush       bool
	}{
		{"marker equal", "", d(true, ""), Observed{Managed: true, HasMarker: true, Marker: "snap2 serial=1"}, false},
		{"marker differs", "db", d(true, ""), Observed{Managed: true, HasMarker: true, Marker: "snap1 serial=0"}, true},
		{"serial differs", "db", d(true, ""), Observed{Managed: true, HasMarker: true, Marker: "snap2 serial=0"}, true},
		{"marker missing", "db", d(true, ""), Observed{Managed: true}, true},
		{"prefix only", "prefix", d(true, "cache:"), Observed{Managed: true, HasMarker: true, Marker: "snap1 serial=0"}, true},
		{"flag off", "", d(false, ""), Observed{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Plan(tt.d, &tt.o)
			if res.Name != "127.0.0.1:6379/3" || res.Kind != Kind {
				t.Fatalf("resource %s/%s", res.Kind, res.Name)
			}
			if got := len(res.Actions) == 1; got != tt.flush || (res.Status == "in_sync") == tt.flush {
				t.Fatalf("status %s, actions %+v; want flush %v", res.Status, res.Actions, tt.flush)
			}
			if tt.flush {
				a := res.Actions[0]
				if a.Op != OpFlush || a.Args["marker"] != "snap2 serial=1" || a.Args["scope"] != tt.scope {
					t.Fatalf("action %+v", a)
				}
				if tt.scope == "prefix" && !strings.Contains(a.Detail, "cache:*") {
					t.Fatalf("detail %q does not say which keys", a.Detail)
				}
			}
		})
	}
	if k := MarkerKey(d(true, "cache:")); k != "settle:snapshot:cache:" {
		t.Errorf("MarkerKey with prefix = %q", k)
	}
}
