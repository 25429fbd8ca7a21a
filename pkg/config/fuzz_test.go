package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary text (and an included file) through the whole
// front end. It must never panic or hang; `make test` runs the seed corpus,
// `make fuzz` explores.
func FuzzParse(f *testing.F) {
	if ents, err := os.ReadDir(samplesDir); err == nil {
		for _, e := range ents {
			if b, err := os.ReadFile(filepath.Join(samplesDir, e.Name())); err == nil && len(b) < 20000 {
				f.Add(string(b), "")
			}
		}
	}
	if ents, err := filepath.Glob("../../configs/*.conf"); err == nil {
		for _, p := range ents {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(string(b), "")
			}
		}
	}
	f.Add("$A=${A}\nx $A\n", "")
	f.Add("~SEQ(A, 1, 3) ~LST({B,C},{1,2}) v $A$B$C {\n", "include k.conf\n")
	f.Add("include *.inc\n@x y {\n}}}{{\n", "vrrp_instance V { virtual_ipaddress { 1.2.3.4 dev } }")
	f.Add("virtual_server 10.0.0.1 80 { real_server 10.0.0.2 80 { UDP_CHECK { payload zz } } }", "")
	f.Add("$M=a \\\nb \\\n", "")
	f.Fuzz(func(t *testing.T, main, inc string) {
		fs := memFS{"/etc/k.conf": main, "/etc/a.inc": inc}
		cfg, d := Load("/etc/k.conf", Options{ConfigID: "x", FS: fs, Seed: 1, budget: 20000})
		if cfg == nil && !d.Has(Fatal) {
			t.Fatal("nil config without a fatal diagnostic")
		}
		_ = d.ExitCode(false)
	})
}

// FuzzIncludes parses a tree of three in-memory files that include each
// other (globs, brace alternatives, loops, missing files) and checks what an
// operator relies on: Load returns, and every diagnostic points at a line
// that exists in a file of the tree.
func FuzzIncludes(f *testing.F) {
	f.Add("include conf.d/*.conf\nglobal_defs {\n router_id r\n}\n", "include b.conf\nvrrp_instance V {\n", "}\ninclude ../k.conf\n")
	f.Add("include conf.d/{a,b}.conf\n$X=1\n", "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n", " weight $X\n }\n}\n")
	f.Add("includea conf.d/none*.conf\n", "includeb /etc/conf.d/a.conf\n", "~SEQ(i,1,3) include x$i\n")
	f.Add("include /etc/conf.d/a.conf\ninclude /etc/conf.d/a.conf\n", "@x include b.conf\n", "bgp {\n local_as 1\n}\n")
	f.Fuzz(func(t *testing.T, main, a, b string) {
		fs := MapFS{"/etc/k.conf": main, "/etc/conf.d/a.conf": a, "/etc/conf.d/b.conf": b}
		cfg, d := Load("/etc/k.conf", Options{ConfigID: "x", FS: fs, Seed: 1, budget: 20000})
		if cfg == nil && !d.Has(Fatal) {
			t.Fatal("nil config without a fatal diagnostic")
		}
		for _, x := range d.List {
			text, ok := fs[x.Pos.File]
			if !ok {
				t.Fatalf("diagnostic in a file outside the tree: %s", x)
			}
			if n := strings.Count(text, "\n") + 1; x.Pos.Line < 1 || x.Pos.Line > n {
				t.Fatalf("line %d outside %s (%d lines): %s", x.Pos.Line, x.Pos.File, n, x)
			}
		}
	})
}
