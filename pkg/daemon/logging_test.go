package daemon

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/halo-lb/halo/pkg/vrrpd"
)

func TestLogFormats(t *testing.T) {
	var buf bytes.Buffer
	log, c, err := NewLogger(&buf, LogOptions{Format: "json"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	log.Info("(VI_1) Entering MASTER STATE", "instance", "VI_1", "state", "MASTER")
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil || rec["msg"] != "(VI_1) Entering MASTER STATE" || rec["instance"] != "VI_1" {
		t.Fatalf("json record %q: %v", buf.String(), err)
	}
	buf.Reset()
	log, _, _ = NewLogger(&buf, LogOptions{})
	log.Debug("hidden")
	log.Info("shown", "k", 1)
	if got := buf.String(); strings.Contains(got, "hidden") || !strings.Contains(got, `msg=shown k=1`) {
		t.Fatalf("text log %q", got)
	}
	if _, _, err := NewLogger(&buf, LogOptions{Format: "xml"}); err == nil {
		t.Fatal("xml log format accepted")
	}
}

// The VRRP side's status reaches the wire type by JSON field name, so
// counters it adds under the agreed names need no change in the daemon.
func TestInstancesByFieldName(t *testing.T) {
	in := instances([]vrrpd.Status{{Name: "VI_1", VRID: 51, State: "MASTER", Priority: 100, EffectivePriority: 90,
		VIPs: []string{"10.0.0.1/32"}, Drops: map[string]int{"bad_ttl": 2}, Transitions: 3}})
	if len(in) != 1 || in[0].Name != "VI_1" || in[0].VRID != 51 || in[0].EffectivePriority != 90 || in[0].Drops["bad_ttl"] != 2 ||
		in[0].Transitions != 3 || in[0].VIPs[0] != "10.0.0.1/32" {
		t.Fatalf("%+v", in)
	}
	if in := instances(nil); in == nil || len(in) != 0 {
		t.Fatalf("nil status: %#v", in)
	}
}
