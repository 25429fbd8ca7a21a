// Package testkit is what halo's tests and `make demo` share: which run
// mode the tests are in, the tools a test needs, polling, and building the
// binaries under test. The lab (namespaces), the packet builder and the XDP
// pass sink live in the sub-packages.
//
// Two environment variables, set by the Makefile, decide what a missing
// prerequisite means:
//
//   - HALO_UNPRIVILEGED=1 (`make test-unit`): anything that needs root or an
//     installed tool is skipped.
//   - HALO_REQUIRE_TOOLS=1 (`make test`, after `make deps` installed
//     everything): a missing tool or missing root is a failure, so a run can
//     never be green while a test silently did not run.
//
// Outside make (plain `go test`) a missing tool is a skip that says how to
// get it.
package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// TB is the part of testing.TB the helpers need.
type TB interface {
	Helper()
	Skip(args ...any)
	Fatalf(format string, args ...any)
}

// envBool reads a boolean environment variable: 1/true/yes/on are true,
// unset, empty, 0/false/no/off are false. Anything else is treated as true
// so a typo errs on the side the operator asked for.
func envBool(name string) bool {
	v := strings.TrimSpace(strings.ToLower(os.Getenv(name)))
	switch v {
	case "", "0", "false", "no", "off":
		return false
	}
	if b, err := strconv.ParseBool(v); err == nil {
		return b
	}
	return true
}

// Unprivileged reports whether the run must not use root or system tools
// (HALO_UNPRIVILEGED, set by `make test-unit`).
func Unprivileged() bool { return envBool("HALO_UNPRIVILEGED") }

// Strict reports whether a missing prerequisite is a failure rather than a
// skip (HALO_REQUIRE_TOOLS, set by `make test`).
func Strict() bool { return envBool("HALO_REQUIRE_TOOLS") && !Unprivileged() }

// Packages maps each tool the tests run to the Debian package that has it;
// `make deps` (scripts/deps) installs the same packages.
var Packages = map[string]string{
	"ip":                 "iproute2",
	"ethtool":            "ethtool",
	"ping":               "iputils-ping",
	"curl":               "curl",
	"tcpdump":            "tcpdump",
	"ps":                 "procps",
	"pkill":              "procps",
	"keepalived":         "keepalived",
	"clang":              "clang",
	"llvm-strip":         "llvm",
	"bird":               "bird2",
	"birdc":              "bird2",
	"promtool":           "prometheus",
	"systemd-analyze":    "systemd",
	"qemu-system-x86_64": "qemu-system-x86",
	"busybox":            "busybox-static",
	"ipvsadm":            "ipvsadm",
	"dpkg-deb":           "dpkg",
	"timeout":            "coreutils",
	"nft":                "nftables",
	"gcc":                "gcc",
}

// Missing explains how to get a tool: the Debian package and `make deps`.
func Missing(tool string) string {
	pkg := Packages[tool]
	if pkg == "" {
		return fmt.Sprintf("%s not found in PATH", tool)
	}
	return fmt.Sprintf("%s not found in PATH: `make deps` installs it (Debian package %s)", tool, pkg)
}

// Require checks that every tool is in PATH. A missing one skips the test
// under `make test-unit` or plain `go test`, and fails it under `make test`.
func Require(t TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing(t, Missing(tool))
		}
	}
}

// RequireFile is Require for a file a package installs (samples, headers).
func RequireFile(t TB, path, pkg string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		missing(t, fmt.Sprintf("%s missing: `make deps` installs it (Debian package %s)", path, pkg))
	}
}

func missing(t TB, why string) {
	t.Helper()
	if Strict() {
		t.Fatalf("%s (make test does not skip what make deps installs)", why)
	}
	t.Skip(why)
}

// WaitFor polls cond every 20 ms until it holds or d passes, and returns how
// long it took, or -1 when it never held.
func WaitFor(d time.Duration, cond func() bool) time.Duration {
	start := time.Now()
	for {
		if cond() {
			return time.Since(start)
		}
		if time.Since(start) >= d {
			return -1
		}
		time.Sleep(20 * time.Millisecond)
	}
}
