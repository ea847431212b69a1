package snapshot

import "testing"

func TestSplitName(t *testing.T) {
	for name, want := range map[string][2]string{
		"prod_1.dump": {"prod_1", "custom"}, "a.b.sql.gz": {"a.b", "sql.gz"}, "x.sql": {"x", "sql"},
		"x.json": {"", ""}, ".dump": {"", ""}, ".x.dump.partial-1": {"", ""},
	} {
		id, f := splitName(name)
		if id != want[0] || string(f) != want[1] {
			t.Errorf("splitName(%q) = %q, %q; want %v", name, id, f, want)
		}
	}
}

func TestMajorAndHeaders(t *testing.T) {
	for v, want := range map[string]int{"15.20 (Debian 15.20-0+deb12u1)": 15, "pg_restore (PostgreSQL) 16.4\n": 16, "9.6.3": 9, "": 0} {
		if got := Major(v); got != want {
			t.Errorf("Major(%q) = %d, want %d", v, got, want)
		}
	}
	toc := ";\n; Archive created at 2026-12-03 16:07:42 UTC\n;     dbname: demo\n;     TOC Entries: 11\n;     Dump Version: 1.14-0\n" +
		";     Dumped from database version: 15.20 (Debian)\n;     Dumped by pg_dump version: 16.1\n;\n3344; 0 16388 TABLE DATA public leads demo_app\n"
	h := ParseTOC(toc)
	if h.Database != "demo" || h.Entries != 11 || h.ArchiveVer != "1.14-0" || Major(h.DumpedBy) != 16 || h.TableData != 1 {
		t.Errorf("ParseTOC = %+v", h)
	}
	p := ParsePlainHeader("--\n-- Dumped from database version 15.2\n-- Dumped by pg_dump version 17.0\n")
	if p.DumpedFrom != "15.2" || p.DumpedBy != "17.0" {
		t.Errorf("ParsePlainHeader = %+v", p)
	}
}
