package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/halo-lb/halo/internal/testkit/lab"
)

// halodBin and haloctlBin are built once for the whole package by TestMain.
var halodBin, haloctlBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "halo-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	halodBin = filepath.Join(dir, "halod")
	haloctlBin = filepath.Join(dir, "haloctl")
	cmd := exec.Command("go", "build", "-o", dir+"/", "../../cmd/halod", "../../cmd/haloctl")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building halod: %v\n%s", err, out)
		os.Exit(1)
	}
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

// waitFor polls cond every 20 ms until it holds or d passes, and returns
// how long it took (or -1).
func waitFor(d time.Duration, cond func() bool) time.Duration {
	start := time.Now()
	for time.Since(start) < d {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return -1
}

func hasAddr(ns *lab.NS, addr string) bool {
	out, err := exec.Command("ip", "-n", ns.Name, "-o", "addr", "show").CombinedOutput()
	return err == nil && strings.Contains(string(out), " "+addr+"/")
}

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
