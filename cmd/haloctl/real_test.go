package main

import (
	"strings"
	"testing"

	"github.com/halo-lb/halo/pkg/control/api"
)

func TestRealDisableEnable(t *testing.T) {
	f := &fake{}
	sock := serve(t, f)
	if code, _, errs := haloctl(t, "--control", sock, "real", "disable", "--proto", "udp", "10.0.0.1:53", "10.0.1.1:80"); code != 0 {
		t.Fatalf("disable: exit %d %s", code, errs)
	}
	if code, _, errs := haloctl(t, "--control", sock, "real", "enable", "fwmark:7", "10.0.1.1:80"); code != 0 {
		t.Fatalf("enable: exit %d %s", code, errs)
	}
	want := []api.DrainRequest{{VirtualServer: "10.0.0.1:53", Protocol: "udp", Real: "10.0.1.1:80", Drain: true},
		{VirtualServer: "fwmark:7", Protocol: "tcp", Real: "10.0.1.1:80", Drain: false}}
	if len(f.drains) != 2 || f.drains[0] != want[0] || f.drains[1] != want[1] {
		t.Fatalf("requests %+v", f.drains)
	}
	if code, _, errs := haloctl(t, "--control", sock, "real", "disable", "10.0.0.1:80", "10.0.1.9:80"); code != 1 || !strings.Contains(errs, "no real server 10.0.1.9:80") {
		t.Fatalf("unknown real: exit %d %s", code, errs)
	}
	for _, bad := range [][]string{{"real"}, {"real", "drain", "a", "b"}, {"real", "disable", "a"}} {
		if code, _, _ := haloctl(t, append([]string{"--control", sock}, bad...)...); code != 2 {
			t.Errorf("%v: exit %d, want 2", bad, code)
		}
	}
}
