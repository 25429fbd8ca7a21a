package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/halo-lb/halo/internal/testkit"
	"github.com/halo-lb/halo/internal/testkit/lab"
	"github.com/halo-lb/halo/internal/testkit/sink"
)

// halodBin and haloctlBin are built once for the whole package by TestMain.
var halodBin, haloctlBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "halo-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins, err := testkit.Build(dir, "./cmd/halod", "./cmd/haloctl")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	halodBin, haloctlBin = bins[0], bins[1]
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func writeFile(t testing.TB, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// waitFor and hasAddr are the shared helpers (internal/testkit) under the
// short names the tests use.
var waitFor = testkit.WaitFor

func hasAddr(ns *lab.NS, addr string) bool { return ns.HasAddr(addr) }

// attachPass puts the XDP pass sink on ifname in ns for the test's life.
func attachPass(t *testing.T, ns *lab.NS, ifname string) { sink.AttachIn(t, ns, ifname) }

// neighMAC is the client's neighbour entry for ip ("" when none).
func neighMAC(ns *lab.NS, ip string) string {
	out, _ := exec.Command("ip", "-n", ns.Name, "neigh", "show", ip).CombinedOutput()
	f := strings.Fields(string(out))
	for i := range f {
		if f[i] == "lladdr" && i+1 < len(f) {
			return f[i+1]
		}
	}
	return ""
}

func startHalod(t testing.TB, ns *lab.NS, conf string, extra ...string) *lab.Proc {
	t.Helper()
	args := []string{"-f", conf, "--check-interfaces=false", "--dataplane", "none"}
	if !hasFlag(extra, "--control") {
		args = append(args, "--control", filepath.Join(t.TempDir(), "halod.sock"))
	}
	args = append(args, extra...)
	p := ns.Start(halodBin, args...)
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("halod in %s output:\n%s", ns.Tag, p.Output())
		}
	})
	return p
}

func hasFlag(args []string, f string) bool {
	for _, a := range args {
		if a == f || strings.HasPrefix(a, f+"=") {
			return true
		}
	}
	return false
}
