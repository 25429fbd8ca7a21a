package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const depSample = `kernel/net/netfilter/ipvs/ip_vs_rr.ko: kernel/net/netfilter/ipvs/ip_vs.ko kernel/net/netfilter/nf_conntrack.ko kernel/lib/libcrc32c.ko
kernel/net/netfilter/ipvs/ip_vs.ko: kernel/net/netfilter/nf_conntrack.ko kernel/lib/libcrc32c.ko
kernel/net/netfilter/nf_conntrack.ko: kernel/lib/libcrc32c.ko
kernel/lib/libcrc32c.ko:
kernel/drivers/net/veth.ko:
kernel/net/ipv4/ip-gre.ko: kernel/net/ipv4/gre.ko
kernel/net/ipv4/gre.ko:
`

func TestModuleClosure(t *testing.T) {
	d, err := parseModulesDep(strings.NewReader(depSample))
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.closure([]string{"ip_vs_rr", "veth", "ip_gre", "tun"}, map[string]bool{"tun": true})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"kernel/drivers/net/veth.ko", "kernel/lib/libcrc32c.ko", "kernel/net/ipv4/gre.ko", "kernel/net/ipv4/ip-gre.ko",
		"kernel/net/netfilter/ipvs/ip_vs.ko", "kernel/net/netfilter/ipvs/ip_vs_rr.ko", "kernel/net/netfilter/nf_conntrack.ko"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("closure\n got %q\nwant %q", got, want)
	}
	if _, err := d.closure([]string{"ip_vs_twos"}, nil); err == nil || !strings.Contains(err.Error(), "ip_vs_twos") {
		t.Errorf("a module the kernel lacks should be named: %v", err)
	}
	if _, err := parseModulesDep(strings.NewReader("no colon here\n")); err == nil {
		t.Error("malformed modules.dep accepted")
	}
}

func TestParseLdd(t *testing.T) {
	out := `	linux-vdso.so.1 (0x00007ffd)
	libbpf.so.1 => /lib/x86_64-linux-gnu/libbpf.so.1 (0x00007f43)
	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f43)
	/lib64/ld-linux-x86-64.so.2 (0x00007f43)
`
	want := []string{"/lib/x86_64-linux-gnu/libbpf.so.1", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"}
	if got := parseLdd(out); !reflect.DeepEqual(got, want) {
		t.Errorf("got %q", got)
	}
}

func TestKernelPackageLine(t *testing.T) {
	m := kernelDep.FindStringSubmatch("Depends: linux-image-6.1.0-57-cloud-amd64")
	if m == nil || m[1] != "linux-image-6.1.0-57-cloud-amd64" || m[2] != "6.1.0-57-cloud-amd64" {
		t.Errorf("match %q", m)
	}
	if kernelDep.MatchString("Depends: linux-image-cloud-amd64") {
		t.Error("the meta-package itself matched")
	}
}

func TestParseConsole(t *testing.T) {
	in := "SeaBIOS\r\nHALO-VM-BOOTED kernel=6.1\r\n--- PASS: TestX\r\nHALO-VM-RESULT ipvs.test 0\r\nHALO-VM-RESULT xdp.test 1\r\n"
	var copyOut bytes.Buffer
	res, done := parseConsole(strings.NewReader(in), &copyOut)
	if done {
		t.Error("done without HALO-VM-DONE")
	}
	if !reflect.DeepEqual(res, []result{{"ipvs.test", 0}, {"xdp.test", 1}}) {
		t.Errorf("results %+v", res)
	}
	if !strings.Contains(copyOut.String(), "--- PASS: TestX") {
		t.Error("console not copied")
	}
	_, done = parseConsole(strings.NewReader(in+"HALO-VM-DONE uptime=9\n"), &copyOut)
	if !done {
		t.Error("HALO-VM-DONE not seen")
	}
}

// TestCPIOReadsBack packs an image and lists it with busybox cpio, the
// same format the kernel unpacks.
func TestCPIOReadsBack(t *testing.T) {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("busybox not installed (make test-vm installs busybox-static)")
	}
	src := filepath.Join(t.TempDir(), "payload")
	if err := os.WriteFile(src, []byte("hello from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	im := image{}
	im.file("/sbin/tool", src, 0o755)
	im.data("/etc/halo-vm/tests", []byte("a.test\n"), 0o644)
	im.symlink("/sbin/modprobe", "/bin/busybox")
	var buf bytes.Buffer
	if err := im.writeCPIO(&buf, os.ReadFile); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command(bb, "cpio", "-i", "-d")
	cmd.Dir = dir
	cmd.Stdin = &buf
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("busybox cpio: %v: %s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "sbin/tool")); err != nil || string(b) != "hello from the host\n" {
		t.Errorf("sbin/tool: %q %v", b, err)
	}
	if st, err := os.Stat(filepath.Join(dir, "sbin/tool")); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("sbin/tool mode: %v %v", st, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "etc/halo-vm/tests")); err != nil || string(b) != "a.test\n" {
		t.Errorf("etc/halo-vm/tests: %q %v", b, err)
	}
	if l, err := os.Readlink(filepath.Join(dir, "sbin/modprobe")); err != nil || l != "/bin/busybox" {
		t.Errorf("symlink: %q %v", l, err)
	}
}
