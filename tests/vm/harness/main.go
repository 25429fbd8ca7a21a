// Command harness runs halo's kernel tests in a Debian cloud kernel under
// qemu (make test-vm). The host's kernel has no IPVS; Debian's cloud
// kernel has it as modules, and it is also an older kernel (6.1) for the
// XDP golden tests.
//
// Steps: install qemu, busybox-static and ipvsadm when missing; resolve the
// current linux-image-*-cloud-amd64 from the linux-image-cloud-amd64
// meta-package; download and unpack it once into the cache; compile the
// test binaries and halod; pack an initramfs with busybox, iproute2,
// ipvsadm, the module closure, the binaries and an /init; boot qemu (TCG)
// and read the serial console for the sentinel lines /init prints after
// each test binary. See docs/ipvs.md#vm-harness.
package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed init.sh
var initScript []byte

// packages are compiled with `go test -c` and run in the guest, in order.
var packages = []string{"./pkg/dataplane/ipvs", "./pkg/dataplane/xdp", "./tests/vm/scenario"}

// modules are loaded at boot; their dependencies come from modules.dep.
// The schedulers load on demand too, but loading them up front makes a
// missing one fail loudly here rather than as ENOENT in a test.
var modules = []string{"ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_lc", "ip_vs_wlc", "ip_vs_lblc", "ip_vs_lblcr",
	"ip_vs_dh", "ip_vs_sh", "ip_vs_sed", "ip_vs_nq", "ip_vs_fo", "ip_vs_ovf", "ip_vs_mh",
	"veth", "bridge", "ipip", "ip_gre", "fou", "ip6_tunnel", "nf_conntrack", "sch_ingress", "cls_bpf"}

// tools are host binaries copied into the guest with their libraries.
var tools = map[string]string{"busybox": "/bin/busybox", "ip": "/sbin/ip", "ipvsadm": "/sbin/ipvsadm", "ethtool": "/sbin/ethtool"}

func main() {
	cache := flag.String("cache", defaultCache(), "download and unpack cache")
	timeout := flag.Duration("timeout", 15*time.Minute, "limit for the whole guest run")
	run := flag.String("run", "", "passed to the guest tests as -test.run")
	keep := flag.Bool("keep", false, "keep the work directory (initramfs, console log)")
	pkgs := flag.String("pkgs", strings.Join(packages, ","), "test packages to run in the guest, comma-separated")
	flag.Parse()
	packages = strings.Split(*pkgs, ",")
	start := time.Now()
	code, err := harness(*cache, *timeout, *run, *keep)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vm:", err)
		code = 1
	}
	fmt.Printf("vm: whole run %.1f s\n", time.Since(start).Seconds())
	os.Exit(code)
}

func defaultCache() string {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "halo-vm")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".cache", "halo-vm")
	}
	return filepath.Join(os.TempDir(), "halo-vm-cache")
}

func logf(format string, args ...any) {
	fmt.Printf("vm: "+format+"\n", args...)
}

func harness(cache string, timeout time.Duration, run string, keep bool) (int, error) {
	if err := ensureTools(); err != nil {
		return 1, err
	}
	root, err := repoRoot()
	if err != nil {
		return 1, err
	}
	t0 := time.Now()
	kroot, kv, err := fetchKernel(cache)
	if err != nil {
		return 1, err
	}
	logf("kernel %s ready in %.1f s (cache %s)", kv, time.Since(t0).Seconds(), cache)
	work, err := os.MkdirTemp("", "halo-vm-")
	if err != nil {
		return 1, err
	}
	if keep {
		logf("work directory %s", work)
	} else {
		defer os.RemoveAll(work)
	}
	t0 = time.Now()
	tests, err := buildBinaries(root, work)
	if err != nil {
		return 1, err
	}
	logf("test binaries built in %.1f s", time.Since(t0).Seconds())
	t0 = time.Now()
	img := filepath.Join(work, "initramfs.cpio.gz")
	if err := buildInitramfs(img, root, work, kroot, kv, tests, run); err != nil {
		return 1, err
	}
	st, _ := os.Stat(img)
	logf("initramfs %.1f MB in %.1f s", float64(st.Size())/1e6, time.Since(t0).Seconds())
	vmlinuz := filepath.Join(kroot, "boot", "vmlinuz-"+kv)
	return boot(vmlinuz, img, filepath.Join(work, "console.log"), tests, timeout)
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if d == filepath.Dir(d) {
			return "", errors.New("run from inside the halo repository")
		}
	}
}

// ensureTools installs what the harness needs with apt-get when it is
// missing (CI starts from a clean machine).
func ensureTools() error {
	need := map[string]string{"qemu-system-x86_64": "qemu-system-x86", "busybox": "busybox-static",
		"ipvsadm": "ipvsadm", "ip": "iproute2", "dpkg-deb": "dpkg", "apt-get": "apt"}
	var pkgs []string
	for bin, pkg := range need {
		if _, err := exec.LookPath(bin); err != nil {
			pkgs = append(pkgs, pkg)
		}
	}
	if len(pkgs) == 0 {
		return nil
	}
	sort.Strings(pkgs)
	if os.Geteuid() != 0 {
		return fmt.Errorf("missing %s; install them (apt-get install %s) or run as root", strings.Join(pkgs, " "), strings.Join(pkgs, " "))
	}
	logf("installing %s", strings.Join(pkgs, " "))
	args := append([]string{"install", "-y", "-q", "--no-install-recommends"}, pkgs...)
	if err := command("apt-get", args...); err != nil {
		if err := command("apt-get", "update", "-q"); err != nil {
			return err
		}
		return command("apt-get", args...)
	}
	return nil
}

func command(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

var kernelDep = regexp.MustCompile(`Depends:\s+(linux-image-(\d\S*-cloud-amd64))\s*$`)

// resolveKernel names the package the cloud meta-package points at now.
func resolveKernel() (pkg, kv string, err error) {
	for attempt := 0; attempt < 2; attempt++ {
		out, _ := exec.Command("apt-cache", "depends", "linux-image-cloud-amd64").Output()
		for _, line := range strings.Split(string(out), "\n") {
			if m := kernelDep.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
				return m[1], m[2], nil
			}
		}
		if attempt == 0 && os.Geteuid() == 0 {
			_ = command("apt-get", "update", "-q")
		}
	}
	return "", "", errors.New("apt-cache cannot resolve linux-image-cloud-amd64 (run apt-get update)")
}

// fetchKernel returns the unpacked kernel tree, downloading it once. When
// apt cannot be asked (offline), the newest cached kernel is used.
func fetchKernel(cache string) (kroot, kv string, err error) {
	pkg, kv, rerr := resolveKernel()
	if rerr != nil {
		cached, _ := filepath.Glob(filepath.Join(cache, "kroot", "*", ".done"))
		if len(cached) == 0 {
			return "", "", rerr
		}
		sort.Strings(cached)
		kroot = filepath.Dir(cached[len(cached)-1])
		kv = filepath.Base(kroot)
		logf("%v; using cached kernel %s", rerr, kv)
		return kroot, kv, nil
	}
	kroot = filepath.Join(cache, "kroot", kv)
	if _, err := os.Stat(filepath.Join(kroot, ".done")); err == nil {
		return kroot, kv, nil
	}
	debs := filepath.Join(cache, "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return "", "", err
	}
	deb, _ := filepath.Glob(filepath.Join(debs, pkg+"_*.deb"))
	if len(deb) == 0 {
		logf("downloading %s", pkg)
		cmd := exec.Command("apt-get", "download", "-q", pkg)
		cmd.Dir = debs
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("apt-get download %s: %v\n%s", pkg, err, out)
		}
		deb, _ = filepath.Glob(filepath.Join(debs, pkg+"_*.deb"))
		if len(deb) == 0 {
			return "", "", fmt.Errorf("apt-get download %s left no .deb in %s", pkg, debs)
		}
	}
	_ = os.RemoveAll(kroot)
	if err := os.MkdirAll(filepath.Dir(kroot), 0o755); err != nil {
		return "", "", err
	}
	if err := command("dpkg-deb", "-x", deb[0], kroot); err != nil {
		return "", "", err
	}
	// The .deb ships no modules.dep (the postinst runs depmod); the host
	// may have no kmod, so busybox's depmod writes it.
	if err := command("busybox", "depmod", "-b", kroot, kv); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(filepath.Join(kroot, ".done"), nil, 0o644); err != nil {
		return "", "", err
	}
	return kroot, kv, nil
}

// buildBinaries compiles the test packages and the daemon, statically.
func buildBinaries(root, work string) ([]string, error) {
	bin := filepath.Join(work, "bin")
	args := append([]string{"test", "-c", "-o", bin + "/"}, packages...)
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	cmd = exec.Command("go", "build", "-o", bin+"/", "./cmd/halod", "./cmd/haloctl")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build halod: %v\n%s", err, out)
	}
	var tests []string
	for _, p := range packages {
		tests = append(tests, filepath.Base(p)+".test")
	}
	return tests, nil
}

func buildInitramfs(img, root, work, kroot, kv string, tests []string, run string) error {
	im := image{}
	for _, d := range []string{"/proc", "/sys", "/dev", "/run", "/tmp", "/root", "/etc", "/usr/bin", "/usr/sbin", "/sbin", "/bin"} {
		im.dir(d)
	}
	libs := map[string]bool{}
	for name, dst := range tools {
		src, err := exec.LookPath(name)
		if err != nil {
			if name == "ethtool" {
				continue // only the XDP tests on veth use it
			}
			return fmt.Errorf("%s: %w", name, err)
		}
		src, _ = filepath.EvalSymlinks(src)
		im.file(dst, src, 0o755)
		ls, err := sharedLibs(src)
		if err != nil {
			return err
		}
		for _, l := range ls {
			libs[l] = true
		}
	}
	for l := range libs {
		real, err := filepath.EvalSymlinks(l)
		if err != nil {
			return err
		}
		im.file(l, real, 0o755)
	}
	im.symlink("/sbin/modprobe", "/bin/busybox") // the kernel's request_module runs /sbin/modprobe
	im.symlink("/usr/sbin/ip", "/sbin/ip")
	im.file("/init", "", 0o755)
	im["/init"].data = initScript
	im.data("/etc/halo-vm/modules", []byte(strings.Join(modules, "\n")+"\n"), 0o644)
	im.data("/etc/halo-vm/tests", []byte(strings.Join(tests, "\n")+"\n"), 0o644)
	var args string
	if run != "" {
		args = "-test.run=" + run
	}
	im.data("/etc/halo-vm/args", []byte(args+"\n"), 0o644)
	im.data("/etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"), 0o644)
	im.data("/etc/group", []byte("root:x:0:\nnogroup:x:65534:\n"), 0o644)
	for _, t := range tests {
		im.file("/t/"+t, filepath.Join(work, "bin", t), 0o755)
	}
	im.file("/sbin/halod", filepath.Join(work, "bin", "halod"), 0o755)
	// Tests that load an example config read ../../../configs from their
	// package directory; the guest runs them in /t, where that is /configs.
	confs, err := filepath.Glob(filepath.Join(root, "configs", "*.conf"))
	if err != nil {
		return err
	}
	for _, c := range confs {
		im.file("/configs/"+filepath.Base(c), c, 0o644)
	}
	im.file("/sbin/haloctl", filepath.Join(work, "bin", "haloctl"), 0o755)

	mdir := filepath.Join(kroot, "lib", "modules", kv)
	depf, err := os.Open(filepath.Join(mdir, "modules.dep"))
	if err != nil {
		return err
	}
	deps, err := parseModulesDep(depf)
	depf.Close()
	if err != nil {
		return err
	}
	var builtin map[string]bool
	if f, err := os.Open(filepath.Join(mdir, "modules.builtin")); err == nil {
		builtin = parseBuiltin(f)
		f.Close()
	}
	files, err := deps.closure(modules, builtin)
	if err != nil {
		return err
	}
	gm := "/lib/modules/" + kv
	for _, f := range files {
		im.file(gm+"/"+f, filepath.Join(mdir, f), 0o644)
	}
	// modules.dep limited to what is packed, so modprobe never looks for
	// a file that is not there.
	var dep bytes.Buffer
	packed := map[string]bool{}
	for _, f := range files {
		packed[f] = true
	}
	for _, f := range files {
		fmt.Fprintf(&dep, "%s:", f)
		for _, d := range deps.deps[f] {
			if packed[d] {
				fmt.Fprintf(&dep, " %s", d)
			}
		}
		dep.WriteString("\n")
	}
	im.data(gm+"/modules.dep", dep.Bytes(), 0o644)
	for _, f := range []string{"modules.builtin", "modules.alias", "modules.order"} {
		if _, err := os.Stat(filepath.Join(mdir, f)); err == nil {
			im.file(gm+"/"+f, filepath.Join(mdir, f), 0o644)
		}
	}

	out, err := os.Create(img)
	if err != nil {
		return err
	}
	defer out.Close()
	zw, _ := gzip.NewWriterLevel(out, gzip.BestSpeed)
	if err := im.writeCPIO(zw, os.ReadFile); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return out.Close()
}

// result is what the console said about one test binary.
type result struct {
	name string
	code int
}

var resultLine = regexp.MustCompile(`^HALO-VM-RESULT (\S+) (\d+)\s*$`)

// parseConsole reads the guest's serial output, copying it to w, and
// returns the per-binary results and whether /init reached its end.
func parseConsole(r io.Reader, w io.Writer) (results []result, done bool) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		fmt.Fprintln(w, line)
		if m := resultLine.FindStringSubmatch(line); m != nil {
			code, _ := strconv.Atoi(m[2])
			results = append(results, result{m[1], code})
		}
		if strings.HasPrefix(line, "HALO-VM-DONE") {
			done = true
		}
	}
	return results, done
}

func boot(vmlinuz, img, logPath string, tests []string, timeout time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// TCG only: this host's /dev/kvm cannot boot stock kernels
	// (docs/ipvs.md#vm-harness). panic=-1 with -no-reboot turns a guest
	// panic into qemu's exit instead of a hang.
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", "-accel", "tcg", "-m", "1536", "-smp", "2",
		"-nographic", "-no-reboot", "-kernel", vmlinuz, "-initrd", img,
		"-append", "console=ttyS0 panic=-1 quiet")
	cmd.Stdin = nil
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	logf, err := os.Create(logPath)
	if err != nil {
		return 1, err
	}
	defer logf.Close()
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return 1, fmt.Errorf("start qemu: %w", err)
	}
	type parsed struct {
		results []result
		done    bool
	}
	pc := make(chan parsed, 1)
	go func() {
		r, d := parseConsole(pr, io.MultiWriter(os.Stdout, logf))
		pc <- parsed{r, d}
	}()
	werr := cmd.Wait()
	pw.Close()
	p := <-pc
	fmt.Printf("vm: guest ran %.1f s\n", time.Since(t0).Seconds())
	if ctx.Err() != nil {
		return 1, fmt.Errorf("guest did not finish within %s (console: %s)", timeout, logPath)
	}
	passed, failed := 0, 0
	got := map[string]bool{}
	for _, r := range p.results {
		got[r.name] = true
		if r.code == 0 {
			passed++
		} else {
			failed++
			fmt.Printf("vm: FAIL %s (exit %d)\n", r.name, r.code)
		}
	}
	for _, t := range tests {
		if !got[t] {
			failed++
			fmt.Printf("vm: FAIL %s (no result on the console)\n", t)
		}
	}
	fmt.Printf("vm: %d passed, %d failed\n", passed, failed)
	if !p.done {
		return 1, fmt.Errorf("guest ended before /init finished (qemu: %v)", werr)
	}
	if failed > 0 {
		return 1, nil
	}
	return 0, nil
}
