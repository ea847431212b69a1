package desired

import "testing"

func TestKeyLines(t *testing.T) {
	cases := []struct {
		name string
		src  string
		want map[string]int // keys absent from want must map where listed
		none []string       // keys that must not be found
	}{
		{name: "quoted keys with dots and equals",
			src:  "[app]\n\"a.b\" = 1\n'c=d' = 2\n\"e\\\"f\" = 3\nname = \"x\"\n",
			want: map[string]int{"app": 1, "app.a.b": 2, "app.c=d": 3, `app.e"f`: 4, "app.name": 5}},
		{name: "dotted keys define their parents",
			src:  "schema = 1\napp.blue.port = 3000\n",
			want: map[string]int{"schema": 1, "app": 2, "app.blue": 2, "app.blue.port": 2}},
		{name: "multi-line basic string holding key = lines",
			src:  "[app]\nnote = \"\"\"\nname = \"fake\"\n\\\"\"\"\nactive = 1\n\"\"\"\nname = \"real\"\n",
			want: map[string]int{"app.note": 2, "app.name": 7}, none: []string{"app.active"}},
		{name: "multi-line literal string closing with extra quotes",
			src:  "[app]\nnote = '''\nname = 1\nx'''''\nname = 2\n",
			want: map[string]int{"app.name": 5}},
		{name: "array spanning lines with strings that look like keys",
			src:  "[agent]\nlist = [\n  \"name = 1\",\n  [ \"x\" ],\n  'mode = 2', # ] comment\n]\nmode = \"report\"\n",
			want: map[string]int{"agent.list": 2, "agent.mode": 7}, none: []string{"agent.name"}},
		{name: "table headers with comments, quotes and spaces",
			src:  "[ app . blue ] # the blue one\nport = 1\n[[\"odd]name\".x]]\ny = 2\n",
			want: map[string]int{"app.blue": 1, "app.blue.port": 2, "odd]name.x": 3, "odd]name.x.y": 4}},
		{name: "CRLF line endings",
			src:  "schema = 1\r\n[pm2]\r\nhome = \"/h\"\r\n",
			want: map[string]int{"schema": 1, "pm2": 2, "pm2.home": 3}},
		{name: "inline table keys resolve to their line through the parent",
			src:  "[app]\nblue = { port = 1, dir = \"/x = y\" }\nname = \"n\"\n",
			want: map[string]int{"app.blue": 2, "app.name": 3}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := keyLines(c.src)
			for k, l := range c.want {
				if got[k] != l {
					t.Errorf("line of %q = %d, want %d (all: %v)", k, got[k], l, got)
				}
			}
			for _, k := range c.none {
				if l, ok := got[k]; ok {
					t.Errorf("%q found at line %d inside a value", k, l)
				}
			}
		})
	}
}

func TestLineOfFallsBackToTheParent(t *testing.T) {
	lines := map[string]int{"app": 3, "app.blue": 8}
	for key, want := range map[string]int{"app.blue.port": 8, "app.green.port": 3, "pm2.home": 0, "": 0} {
		if got := lineOf(lines, key); got != want {
			t.Errorf("lineOf(%q) = %d, want %d", key, got, want)
		}
	}
}
