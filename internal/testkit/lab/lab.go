// Package lab builds network-namespace topologies for halo's end-to-end
// tests and for `make demo`: namespaces, a bridge in its own "switch"
// namespace, veth links, addresses, routes, sysctls, commands and background
// processes inside namespaces, and a private bpffs.
//
// Everything a Lab creates is removed by the cleanup it registers, also when
// the test fails or panics. Namespace names carry the creating process's pid,
// so a new Lab can sweep what a killed run left behind without touching the
// namespaces of test binaries that are still running in parallel.
//
// The lab drives iproute2 (`ip`) and ethtool rather than netlink for setup:
// the commands it runs are the ones an operator would type, they show up
// verbatim in failure messages, and they are what docs/lab.md#kernel-features
// was measured with.
package lab

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/halo-lb/halo/internal/testkit"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Prefix starts the name of every namespace a lab creates.
const Prefix = "halo-"

// T is the part of testing.TB the lab needs; *testing.T and *testing.B
// satisfy it, and so does the runner behind `make demo`.
type T interface {
	Helper()
	Cleanup(func())
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
}

// Lab owns a set of namespaces and the processes started in them.
type Lab struct {
	t     T
	id    string
	mu    sync.Mutex
	nss   []*NS
	procs []*Proc
	mnts  []string
	ports int
}

// RequireRoot skips the test when it cannot create namespaces: under `make
// test-unit` (HALO_UNPRIVILEGED) and in a plain `go test` as a normal user.
// Under `make test` (HALO_REQUIRE_TOOLS) not being root, or missing iproute2,
// is a failure: CI runs as root after `make deps`, so a skip
// there would hide a test that never ran.
func RequireRoot(t testkit.TB) {
	t.Helper()
	if testkit.Unprivileged() {
		t.Skip("HALO_UNPRIVILEGED is set (make test-unit): skipping a test that needs root")
	}
	if os.Geteuid() != 0 {
		if testkit.Strict() {
			t.Fatalf("needs root (network namespaces, BPF): run `make test` as root, or `make test-unit`")
		}
		t.Skip("needs root (network namespaces, BPF); run `make test` as root")
	}
	testkit.Require(t, "ip")
}

// New returns an empty lab whose resources are released at t's cleanup.
func New(t T) *Lab {
	t.Helper()
	Sweep()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	l := &Lab{t: t, id: fmt.Sprintf("%s%d-%s", Prefix, os.Getpid(), hex.EncodeToString(b))}
	t.Cleanup(l.Close)
	return l
}

// Sweep deletes namespaces with the lab prefix whose creating process is
// gone, killing what still runs inside them first.
func Sweep() {
	ents, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, Prefix) {
			continue
		}
		pidStr, _, _ := strings.Cut(strings.TrimPrefix(name, Prefix), "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || processAlive(pid) {
			continue
		}
		killNSProcs(name)
		_ = exec.Command("ip", "netns", "del", name).Run()
	}
}

func processAlive(pid int) bool {
	return syscall.Kill(pid, 0) == nil
}

func killNSProcs(name string) {
	out, _ := exec.Command("ip", "netns", "pids", name).Output()
	for _, f := range strings.Fields(string(out)) {
		// Never the test itself: ip lists a process by its main
		// thread's namespace, and a test's goroutine may hold the main
		// thread in the namespace it works in.
		if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// Names returns the names of the namespaces the lab has created so far.
func (l *Lab) Names() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, n := range l.nss {
		out = append(out, n.Name)
	}
	return out
}

// Close stops every process and deletes every namespace. It is registered
// as a cleanup by New; calling it again is harmless.
func (l *Lab) Close() {
	l.mu.Lock()
	procs, nss, mnts := l.procs, l.nss, l.mnts
	l.procs, l.nss, l.mnts = nil, nil, nil
	l.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].Stop()
	}
	for _, m := range mnts {
		_ = unix.Unmount(m, unix.MNT_DETACH)
		_ = os.Remove(m)
	}
	for _, n := range nss {
		killNSProcs(n.Name)
		if out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput(); err != nil {
			l.t.Logf("lab: deleting %s: %v: %s", n.Name, err, out)
		}
	}
}

// NS is one network namespace of the lab.
type NS struct {
	Name string // full name under /run/netns
	Tag  string // the short name given to Lab.NS
	lab  *Lab
}

// NS creates a namespace with lo up. tag is a short readable suffix.
func (l *Lab) NS(tag string) *NS {
	l.t.Helper()
	n := &NS{Name: l.id + "-" + tag, Tag: tag, lab: l}
	l.mustCmd("ip", "netns", "add", n.Name)
	l.mu.Lock()
	l.nss = append(l.nss, n)
	l.mu.Unlock()
	n.IP("link", "set", "lo", "up")
	// No duplicate address detection in labs: link-local and other IPv6
	// addresses are usable the moment an interface comes up.
	n.Sysctl("net.ipv6.conf.default.accept_dad", "0")
	n.Sysctl("net.ipv6.conf.all.accept_dad", "0")
	return n
}

func (l *Lab) mustCmd(name string, args ...string) string {
	l.t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("lab: %s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// IP runs `ip -n NS args...` and fails the test on error.
func (n *NS) IP(args ...string) string {
	n.lab.t.Helper()
	return n.lab.mustCmd("ip", append([]string{"-n", n.Name}, args...)...)
}

// Exec runs a command inside the namespace and returns its combined output.
func (n *NS) Exec(name string, args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return buf.String(), err
}

// MustExec is Exec that fails the test on error.
func (n *NS) MustExec(name string, args ...string) string {
	n.lab.t.Helper()
	out, err := n.Exec(name, args...)
	if err != nil {
		n.lab.t.Fatalf("lab: in %s: %s %s: %v: %s", n.Tag, name, strings.Join(args, " "), err, out)
	}
	return out
}

// Do runs fn on an OS thread that has entered the namespace. Goroutines that
// fn starts run in whatever namespace their thread is in, so fn should do its
// namespace-bound work (socket creation, BPF attach) itself. Sockets created
// inside stay in the namespace after Do returns.
func (n *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is left locked (and so discarded by the runtime) if the
		// namespace cannot be restored: it must never run other goroutines.
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		target, err := netns.GetFromName(n.Name)
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			errc <- err
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- fmt.Errorf("restore namespace: %w (fn: %v)", err, ferr)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Sysctl sets a sysctl (dotted name, as for sysctl(8)) inside the namespace.
func (n *NS) Sysctl(key, value string) {
	n.lab.t.Helper()
	path := filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
	if err := n.Do(func() error { return os.WriteFile(path, []byte(value), 0o644) }); err != nil {
		n.lab.t.Fatalf("lab: sysctl %s=%s in %s: %v", key, value, n.Tag, err)
	}
}

// Addr adds an address (CIDR) to an interface and brings it up. IPv6
// addresses get nodad so they are usable at once.
func (n *NS) Addr(ifname, cidr string) {
	n.lab.t.Helper()
	args := []string{"addr", "add", cidr, "dev", ifname}
	if strings.Contains(cidr, ":") {
		args = append(args, "nodad")
	}
	n.IP(args...)
	n.IP("link", "set", ifname, "up")
}

// Route adds a route: dst ("default" or CIDR) via gw.
func (n *NS) Route(dst, gw string) {
	n.lab.t.Helper()
	family := "-4"
	if strings.Contains(gw, ":") {
		family = "-6"
	}
	n.IP(family, "route", "add", dst, "via", gw)
}

// TxOff turns off transmit checksum offload: the stack then fills in TCP and
// UDP checksums itself, which frames that XDP redirects or bounces with
// XDP_TX need on veth (docs/lab.md#checksum-offload).
func (n *NS) TxOff(ifname string) {
	n.lab.t.Helper()
	n.MustExec("ethtool", "-K", ifname, "tx", "off")
}

// HasAddr reports whether any interface in the namespace has addr (without
// prefix length) assigned, as `ip addr` shows it.
func (n *NS) HasAddr(addr string) bool {
	out, err := exec.Command("ip", "-n", n.Name, "-o", "addr", "show").CombinedOutput()
	return err == nil && strings.Contains(string(out), " "+addr+"/")
}

// Link returns the interface by name as seen inside the namespace.
func (n *NS) Link(ifname string) *net.Interface {
	n.lab.t.Helper()
	var ifi *net.Interface
	err := n.Do(func() error {
		var err error
		ifi, err = net.InterfaceByName(ifname)
		return err
	})
	if err != nil {
		n.lab.t.Fatalf("lab: interface %s in %s: %v", ifname, n.Tag, err)
	}
	return ifi
}

// Veth connects two namespaces with a veth pair (aName in a, bName in b),
// both ends up.
func (l *Lab) Veth(a *NS, aName string, b *NS, bName string) {
	l.t.Helper()
	tmp := l.tmpIfName()
	l.mustCmd("ip", "-n", a.Name, "link", "add", aName, "type", "veth", "peer", "name", tmp, "netns", b.Name)
	b.IP("link", "set", tmp, "name", bName)
	a.IP("link", "set", aName, "up")
	b.IP("link", "set", bName, "up")
}

func (l *Lab) tmpIfName() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ports++
	return fmt.Sprintf("hl%d", l.ports)
}

// Switch is a Linux bridge living in its own namespace.
type Switch struct {
	NS     *NS
	Bridge string
	lab    *Lab
	ports  int
}

// Switch creates a namespace holding bridge br0.
func (l *Lab) Switch(tag string) *Switch {
	l.t.Helper()
	sw := &Switch{NS: l.NS(tag), Bridge: "br0", lab: l}
	sw.NS.IP("link", "add", sw.Bridge, "type", "bridge")
	// No STP and no forward delay: ports forward at once.
	sw.NS.IP("link", "set", sw.Bridge, "type", "bridge", "forward_delay", "0", "stp_state", "0")
	sw.NS.IP("link", "set", sw.Bridge, "up")
	return sw
}

// Plug connects ns to the bridge with a veth whose end in ns is named ifname.
// It returns the name of the bridge port.
func (sw *Switch) Plug(ns *NS, ifname string) string {
	sw.lab.t.Helper()
	sw.ports++
	port := fmt.Sprintf("p%d", sw.ports)
	sw.lab.Veth(sw.NS, port, ns, ifname)
	sw.NS.IP("link", "set", port, "master", sw.Bridge)
	return port
}

// BPFFS mounts a private bpffs in a fresh temporary directory and returns
// its path; it is unmounted at cleanup. Tests pin under it instead of
// /sys/fs/bpf, which is not mounted here (docs/lab.md#bpffs-in-namespaces).
func (l *Lab) BPFFS() string {
	l.t.Helper()
	dir, err := os.MkdirTemp("", "halo-bpffs-")
	if err != nil {
		l.t.Fatalf("lab: %v", err)
	}
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		_ = os.Remove(dir)
		l.t.Fatalf("lab: mount bpffs on %s: %v", dir, err)
	}
	l.mu.Lock()
	l.mnts = append(l.mnts, dir)
	l.mu.Unlock()
	return dir
}

// Proc is a background process started in a namespace.
type Proc struct {
	Name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
	once sync.Once
}

// Start runs a command in the background inside the namespace. Its output is
// captured (Output) and it is killed, with its whole process group, at
// cleanup. `ip netns exec` forks, so signalling only the child pid would leave
// the real process running (docs/lab.md#ip-netns-exec-forks).
func (n *NS) Start(name string, args ...string) *Proc {
	n.lab.t.Helper()
	p, err := n.StartErr(name, args...)
	if err != nil {
		n.lab.t.Fatalf("lab: start %s in %s: %v", name, n.Tag, err)
	}
	return p
}

// StartErr is Start that returns the error instead of failing the test.
func (n *NS) StartErr(name string, args ...string) (*Proc, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
	p := &Proc{Name: name, cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	n.lab.mu.Lock()
	n.lab.procs = append(n.lab.procs, p)
	n.lab.mu.Unlock()
	return p, nil
}

// Output returns what the process has written so far.
func (p *Proc) Output() string { return p.out.String() }

// Pid is the pid of the process group leader.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the whole process group.
func (p *Proc) Signal(sig syscall.Signal) error {
	return syscall.Kill(-p.cmd.Process.Pid, sig)
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Wait waits for the process to exit, at most d, and returns its error.
func (p *Proc) Wait(d time.Duration) (exited bool, err error) {
	select {
	case <-p.done:
		return true, p.err
	case <-time.After(d):
		return false, nil
	}
}

// Stop sends SIGTERM to the process group, then SIGKILL after two seconds.
func (p *Proc) Stop() {
	p.once.Do(func() {
		_ = p.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(2 * time.Second):
			_ = p.Signal(syscall.SIGKILL)
			<-p.done
		}
	})
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
