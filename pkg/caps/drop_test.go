package caps

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/halo-lb/halo/internal/testkit"
)

const childEnv = "HALO_CAPS_CHILD"

// TestDropInChild drops capabilities in a child process (the test binary
// again) and reads the result back from the kernel: every thread's CapEff
// and CapPrm, the bounding set, what a root program the child execs gets,
// and two real operations (chown needs the dropped CAP_CHOWN, a raw socket
// the kept CAP_NET_RAW).
func TestDropInChild(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		t.Skip("child mode")
	}
	if testkit.Unprivileged() || os.Geteuid() != 0 {
		t.Skip("needs root: dropping capabilities one has not got proves nothing")
	}
	for _, mode := range []string{"tight", "rootscripts"} {
		t.Run(mode, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestDropChild$", "-test.v")
			cmd.Env = append(os.Environ(), childEnv+"="+mode, "TMPDIR="+t.TempDir())
			out, err := cmd.CombinedOutput()
			if strings.Contains(string(out), "cgo binary") {
				t.Skip("test binary built with cgo: AllThreadsSyscall unavailable (halod is built with CGO_ENABLED=0)")
			}
			if err != nil || !strings.Contains(string(out), "CHILD OK") {
				t.Fatalf("child: %v\n%s", err, out)
			}
			t.Log(strings.TrimSpace(string(out)))
		})
	}
}

func TestDropChild(t *testing.T) {
	mode := os.Getenv(childEnv)
	if mode == "" {
		t.Skip("runs only as TestDropInChild's child")
	}
	// Several OS threads exist before the drop, so a per-thread capset
	// would leave some of them privileged.
	release := make(chan struct{})
	for i := 0; i < 4; i++ {
		go func() { runtime.LockOSThread(); <-release }()
	}
	defer close(release)
	n := Needs{XDP: true, KernelHasCapBPF: KernelHasCapBPF(), Scripts: true, RootScripts: mode == "rootscripts"}
	p := For(n)
	if err := Drop(p); err != nil {
		fmt.Println(err)
		t.Fatal(err)
	}
	tasks, _ := filepath.Glob("/proc/self/task/*/status")
	if len(tasks) < 2 {
		t.Fatalf("only %d threads", len(tasks))
	}
	for _, st := range tasks {
		b, err := os.ReadFile(st)
		if err != nil {
			continue // thread exited
		}
		eff, prm, bnd, err := parseStatus(string(b))
		if err != nil {
			t.Fatal(err)
		}
		if eff != p.Keep || prm != p.Keep {
			t.Fatalf("%s: CapEff %s CapPrm %s, want %s", st, eff, prm, p.Keep)
		}
		if p.Bounding != All && bnd != p.Keep {
			t.Fatalf("%s: CapBnd %x, want %x", st, uint64(bnd), uint64(p.Keep))
		}
	}
	f := filepath.Join(os.TempDir(), "owned")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(f, 65534, 65534); err == nil {
		t.Fatal("chown to nobody worked without CAP_CHOWN")
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, 112) // VRRP
	if err != nil {
		t.Fatalf("raw socket with CAP_NET_RAW kept: %v", err)
	}
	syscall.Close(fd)
	// A root program halod execs (a notify script without script_user).
	b, err := exec.Command("cat", "/proc/self/status").Output()
	if err != nil {
		t.Fatal(err)
	}
	eff, _, _, err := parseStatus(string(b))
	if err != nil {
		t.Fatal(err)
	}
	if mode == "rootscripts" && !eff.Has(Chown) {
		t.Fatalf("root script got CapEff %s; keepalived runs it with full root", eff)
	}
	if mode == "tight" && eff&^p.Keep != 0 {
		t.Fatalf("exec'd program climbed back to %s (kept %s)", eff, p.Keep)
	}
	fmt.Printf("CHILD OK mode=%s threads=%d keep=%s script CapEff=%x\n", mode, len(tasks), p.Keep, uint64(eff))
}
