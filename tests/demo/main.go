// Command demo runs halo's main job on a lab built from network
// namespaces: two directors elect a VRRP master for a VIP and load-balance
// it over XDP in DR mode to two web servers; a client fetches pages; one web
// server fails (halo takes it out, traffic avoids it) and comes back; then
// the master director crashes (SIGKILL and its link cut) in the middle of a
// download, the backup takes over and the download completes. `make demo`
// runs it as root; TestDemo runs the same steps under `make test`.
// Everything it creates is removed when it exits, also on failure or Ctrl-C.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/halo-lb/halo/internal/testkit"
)

// runner satisfies lab.T outside of `go test`.
type runner struct{ cleanups []func() }

func (r *runner) Helper()                           {}
func (r *runner) Cleanup(f func())                  { r.cleanups = append(r.cleanups, f) }
func (r *runner) Logf(format string, args ...any)   { fmt.Printf(format+"\n", args...) }
func (r *runner) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
func (r *runner) close() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
	r.cleanups = nil
}

func main() {
	if os.Geteuid() != 0 || testkit.Unprivileged() {
		fmt.Fprintln(os.Stderr, "demo: needs root (network namespaces and XDP)")
		os.Exit(1)
	}
	r := &runner{}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() { <-sig; r.close(); os.Exit(130) }()
	code := 0
	func() {
		defer func() {
			if p := recover(); p != nil {
				fmt.Fprintln(os.Stderr, "demo failed:", p)
				code = 1
			}
			fmt.Println("removing the lab")
			r.close()
		}()
		res := run(r)
		fmt.Printf("\ndemo OK: real failure detected in %v; crash failover: VIP moved in %v, "+
			"the download stalled %v and completed\n", res.RealDown, res.VIPMoved, res.Stall)
	}()
	os.Exit(code)
}
