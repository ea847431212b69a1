package desired

import "testing"

func TestParseSSH(t *testing.T) {
	for in, want := range map[string]string{
		"root@127.0.0.1:2222":    "root 127.0.0.1:2222",
		"deploy@vps.example.com": "deploy vps.example.com:22",
		"deploy@10.0.0.7":        "deploy 10.0.0.7:22",
		"u_1.x-y@[::1]:22":       "u_1.x-y [::1]:22",
		"u@[2001:db8::7]":        "u [2001:db8::7]:22",
		"u@h:65535":              "u h:65535",
	} {
		u, a, err := ParseSSH(in)
		if err != nil || u+" "+a != want {
			t.Errorf("ParseSSH(%q) = %q %q %v, want %s", in, u, a, err, want)
		}
	}
	for _, in := range []string{
		"127.0.0.1:22", "@h", "root@", "root@:22", "-oProxyCommand=x@h", "ro ot@h", "root@h:0", "root@h:70000",
		"root@h:22x", "root@::1", "root@[::1", "root@[h]:22", "root@-h", "root@h;id", "root@h:22:22",
		"root@h/x", "root@$(id)", "u:Sup3rPW@h", "root@[::1]:", "a@b@c", "root@h\n",
	} {
		if u, a, err := ParseSSH(in); err == nil {
			t.Errorf("ParseSSH(%q) accepted: %q %q", in, u, a)
		}
	}
}
