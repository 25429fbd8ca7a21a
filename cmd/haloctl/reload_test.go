package main

import (
	"strings"
	"testing"

	"github.com/halo-lb/halo/pkg/control/api"
)

func TestReload(t *testing.T) {
	f := &fake{reload: api.ReloadResult{OK: true, Summary: "virtual servers +1 -0 =1"}}
	sock := serve(t, f)
	if code, out, errs := haloctl(t, "--control", sock, "reload"); code != 0 || !strings.Contains(out, "+1 -0 =1") {
		t.Fatalf("good reload: exit %d %q %q", code, out, errs)
	}
	f.reload = api.ReloadResult{Error: "the configuration has errors", Diagnostics: []string{"/etc/k.conf:3:5: error: bad address"}}
	code, _, errs := haloctl(t, "--control", sock, "reload")
	if code != 1 || !strings.Contains(errs, "/etc/k.conf:3:5: error: bad address") || !strings.Contains(errs, "the configuration has errors") {
		t.Fatalf("refused reload: exit %d %q", code, errs)
	}
}
