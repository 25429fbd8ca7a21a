package testkit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestEnvBool(t *testing.T) {
	for v, want := range map[string]bool{
		"": false, "0": false, "false": false, "no": false, "off": false, " 0 ": false,
		"1": true, "true": true, "TRUE": true, "yes": true, "on": true, "t": true,
	} {
		t.Setenv("HALO_TESTKIT_X", v)
		if got := envBool("HALO_TESTKIT_X"); got != want {
			t.Errorf("envBool(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestStrictNeverUnderUnprivileged(t *testing.T) {
	t.Setenv("HALO_REQUIRE_TOOLS", "1")
	t.Setenv("HALO_UNPRIVILEGED", "0")
	if !Strict() || Unprivileged() {
		t.Fatalf("HALO_UNPRIVILEGED=0 must not mean unprivileged: Strict %v Unprivileged %v", Strict(), Unprivileged())
	}
	t.Setenv("HALO_UNPRIVILEGED", "1")
	if Strict() {
		t.Fatal("make test-unit must skip, not fail, on a missing tool")
	}
}

// recorder stands in for *testing.T to see which way Require went.
type recorder struct{ skipped, failed string }

func (r *recorder) Helper()                           {}
func (r *recorder) Skip(args ...any)                  { r.skipped = args[0].(string) }
func (r *recorder) Fatalf(format string, args ...any) { r.failed = format }

func TestRequireSkipsOrFails(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("HALO_UNPRIVILEGED", "")
	t.Setenv("HALO_REQUIRE_TOOLS", "")
	r := &recorder{}
	Require(r, "keepalived")
	if r.skipped == "" || r.failed != "" {
		t.Fatalf("plain go test: want a skip, got skip %q fail %q", r.skipped, r.failed)
	}
	if want := "Debian package keepalived"; !strings.Contains(r.skipped, want) {
		t.Errorf("skip message %q does not say %q", r.skipped, want)
	}
	t.Setenv("HALO_REQUIRE_TOOLS", "1")
	r = &recorder{}
	Require(r, "keepalived")
	if r.failed == "" {
		t.Fatal("make test: a missing tool must fail the test")
	}
	r = &recorder{}
	RequireFile(r, filepath.Join(t.TempDir(), "nope"), "keepalived")
	if r.failed == "" {
		t.Fatal("make test: a missing file must fail the test")
	}
}

func TestRequirePresentTool(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "keepalived"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	t.Setenv("HALO_REQUIRE_TOOLS", "1")
	r := &recorder{}
	Require(r, "keepalived")
	if r.skipped != "" || r.failed != "" {
		t.Fatalf("present tool: skip %q fail %q", r.skipped, r.failed)
	}
}

func TestWaitFor(t *testing.T) {
	n := 0
	if took := WaitFor(time.Second, func() bool { n++; return n == 3 }); took < 0 {
		t.Fatal("condition that holds on the third poll reported as never")
	}
	if took := WaitFor(50*time.Millisecond, func() bool { return false }); took != -1 {
		t.Fatalf("never-true condition returned %v, want -1", took)
	}
}
