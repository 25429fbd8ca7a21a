package packaging

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/halo-lb/halo/internal/testkit"
)

// TestDebInstalls builds the .deb and installs it with dpkg into a
// throwaway root, then checks every file and runs the installed binaries.
func TestDebInstalls(t *testing.T) {
	if testing.Short() {
		t.Skip("builds both binaries; skipped with -short")
	}
	testkit.Require(t, "dpkg-deb", "dpkg")
	dpkg, _ := exec.LookPath("dpkg")
	root, _ := filepath.Abs("..")
	deb, err := Build(Options{Root: root, OutDir: t.TempDir(), Version: "1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	inst := t.TempDir()
	admin := filepath.Join(inst, "var/lib/dpkg")
	for _, d := range []string{"info", "updates", "triggers"} {
		os.MkdirAll(filepath.Join(admin, d), 0o755)
	}
	os.WriteFile(filepath.Join(admin, "status"), nil, 0o644)
	cmd := exec.Command(dpkg, "--root="+inst, "--force-not-root", "--force-depends", "--force-script-chrootless",
		"--no-triggers", "--log=/dev/null", "-i", deb)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dpkg -i --root: %v\n%s", err, out)
	}
	out, err := exec.Command(dpkg, "--root="+inst, "-s", "halo").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Status: install ok installed") || !strings.Contains(string(out), "Version: 1.2.3") {
		t.Fatalf("dpkg -s halo: %v\n%s", err, out)
	}
	for path, mode := range map[string]os.FileMode{"usr/sbin/halod": 0o755, "usr/bin/haloctl": 0o755,
		"lib/systemd/system/halod.service": 0o644, "usr/share/doc/halo/examples/keepalived.conf": 0o644,
		"etc/default/halod": 0o644, "usr/share/man/man8/halod.8.gz": 0o644, "usr/share/man/man8/haloctl.8.gz": 0o644} {
		fi, err := os.Stat(filepath.Join(inst, path))
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), mode)
		}
	}
	if v, err := exec.Command(filepath.Join(inst, "usr/sbin/halod"), "--version").Output(); err != nil || strings.TrimSpace(string(v)) != "halod 1.2.3" {
		t.Errorf("installed halod --version: %q %v", v, err)
	}
	// The example config is one halod accepts.
	if out, err := exec.Command(filepath.Join(inst, "usr/sbin/halod"), "-t", "--check-interfaces=false",
		"-f", filepath.Join(inst, "usr/share/doc/halo/examples/keepalived.conf")).CombinedOutput(); err != nil {
		t.Errorf("halod -t on the example: %v\n%s", err, out)
	}
	unit, _ := os.ReadFile(filepath.Join(inst, "lib/systemd/system/halod.service"))
	if mine, _ := os.ReadFile("halod.service"); !bytes.Equal(unit, mine) {
		t.Error("installed unit differs from packaging/halod.service")
	}
	for name, flag := range map[string]string{"halod": `\-\-metrics\-addr`, "haloctl": `\-\-control`} {
		f, err := os.Open(filepath.Join(inst, "usr/share/man/man8", name+".8.gz"))
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(zr)
		f.Close()
		if !bytes.HasPrefix(page, []byte(".TH "+strings.ToUpper(name)+" 8")) || !bytes.Contains(page, []byte(flag)) {
			t.Errorf("%s.8: not the man page generated from the flags:\n%.300s", name, page)
		}
	}
}
