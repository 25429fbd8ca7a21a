package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/halo-lb/halo/pkg/control/api"
)

func TestDump(t *testing.T) {
	sock := serve(t, &fake{status: api.Status{Version: "9"}})
	code, out, errs := haloctl(t, "--control", sock, "dump")
	var d api.Dump
	if code != 0 || json.Unmarshal([]byte(out), &d) != nil {
		t.Fatalf("exit %d %s %s", code, out, errs)
	}
	if d.Version != "9" || len(d.DataplaneServices) != 1 || d.DataplaneServices[0].Counters.Packets != 42 {
		t.Fatalf("dump %+v", d)
	}
}

func TestManAndUsage(t *testing.T) {
	code, out, _ := haloctl(t, "--man")
	if code != 0 || !strings.Contains(out, ".TH HALOCTL 8") || !strings.Contains(out, `\-\-control`) || !strings.Contains(out, "real disable|enable") {
		t.Fatalf("man: %d\n%s", code, out)
	}
	if code, _, _ := haloctl(t, "frobnicate"); code != 2 {
		t.Fatalf("unknown verb: exit %d", code)
	}
}
