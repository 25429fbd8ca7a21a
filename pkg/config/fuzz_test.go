package config

import (
	"os"
	"path/filepath"
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
