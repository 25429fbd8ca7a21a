package bench

import (
	"fmt"
	"io"
	"sync"
)

// Runner satisfies lab.T outside `go test`: cleanups run in reverse at
// Close, and Fatalf panics with a Fatal that Catch turns into an error.
type Runner struct {
	Log      io.Writer
	mu       sync.Mutex
	cleanups []func()
}

// Fatal is the panic value of Runner.Fatalf.
type Fatal string

func (f Fatal) Error() string { return string(f) }

// Helper implements lab.T.
func (r *Runner) Helper() {}

// Cleanup implements lab.T.
func (r *Runner) Cleanup(f func()) {
	r.mu.Lock()
	r.cleanups = append(r.cleanups, f)
	r.mu.Unlock()
}

// Fatalf implements lab.T.
func (r *Runner) Fatalf(format string, args ...any) { panic(Fatal(fmt.Sprintf(format, args...))) }

// Logf implements lab.T.
func (r *Runner) Logf(format string, args ...any) {
	if r.Log != nil {
		fmt.Fprintf(r.Log, format+"\n", args...)
	}
}

// Close runs the cleanups, last first; calling it again is harmless.
func (r *Runner) Close() {
	r.mu.Lock()
	cs := r.cleanups
	r.cleanups = nil
	r.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
}

// Catch runs fn and returns a Fatalf raised inside as an error.
func Catch(fn func()) (err error) {
	defer func() {
		if v := recover(); v != nil {
			if f, ok := v.(Fatal); ok {
				err = f
				return
			}
			panic(v)
		}
	}()
	fn()
	return nil
}
