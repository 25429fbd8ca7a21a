package config

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// FS abstracts file access so tests can parse in-memory trees.
type FS interface {
	ReadFile(name string) ([]byte, error)
	Glob(pattern string) ([]string, error)
}

// What one config may make halod read. A keepalived.conf of thousands of
// virtual servers is a few megabytes; these bounds only stop a file that is
// not a config (a device, a log, a runaway generator) from taking the
// daemon's memory or time.
const (
	maxFileSize  = 16 << 20 // bytes in one file
	maxTotalRead = 64 << 20 // bytes over the main file and every include
)

// readDeadline bounds the read of one file. Reads of a regular file do not
// block on a healthy disk; a hung network or FUSE mount would, and halod -t
// and reloads must answer anyway. A variable so tests can shorten it.
var readDeadline = 5 * time.Second

type osFS struct{}

// ReadFile opens without following the file into a blocking open (a FIFO
// with no writer would block a plain open forever), accepts only a regular
// file of bounded size, and reads it with a deadline. keepalived also
// refuses non-regular config files ("is not a regular non-executable file").
func (osFS) ReadFile(name string) ([]byte, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	switch {
	case fi.IsDir():
		f.Close()
		return nil, errorString("is a directory")
	case !fi.Mode().IsRegular():
		f.Close()
		return nil, errorString("is not a regular file (" + fileKind(fi.Mode()) + ")")
	case fi.Size() > maxFileSize:
		f.Close()
		return nil, fmt.Errorf("is larger than %d MiB (%d bytes)", maxFileSize>>20, fi.Size())
	}
	return readBounded(f, maxFileSize, readDeadline)
}

// readBounded reads at most limit bytes from r, closing it, and gives up
// after d. A read that does not return is left to its goroutine (it ends
// when the file is closed or the mount recovers); the caller gets an error
// at once.
func readBounded(r io.ReadCloser, limit int64, d time.Duration) ([]byte, error) {
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		b, err := io.ReadAll(io.LimitReader(r, limit+1))
		done <- result{b, err}
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case res := <-done:
		r.Close()
		if res.err == nil && int64(len(res.b)) > limit {
			res.err = fmt.Errorf("is larger than %d MiB", limit>>20)
		}
		return res.b, res.err
	case <-t.C:
		r.Close()
		return nil, fmt.Errorf("read did not finish within %v", d)
	}
}

func fileKind(m os.FileMode) string {
	switch {
	case m&os.ModeCharDevice != 0:
		return "character device"
	case m&os.ModeDevice != 0:
		return "block device"
	case m&os.ModeNamedPipe != 0:
		return "FIFO"
	case m&os.ModeSocket != 0:
		return "socket"
	case m&os.ModeSymlink != 0:
		return "symlink"
	}
	return m.Type().String()
}

func (osFS) Glob(pattern string) ([]string, error) { return filepath.Glob(pattern) }

// Stat lets the lexer see permission bits (statFS).
func (osFS) Stat(name string) (fs.FileInfo, error) { return os.Stat(name) }

// statFS is an FS that can report file modes; only the OS one does.
type statFS interface {
	Stat(name string) (fs.FileInfo, error)
}

func isInclude(w string) bool {
	if !strings.HasPrefix(w, "include") {
		return false
	}
	for _, c := range w[len("include"):] {
		if !strings.ContainsRune("rmwba", c) {
			return false
		}
	}
	return true
}

func (lx *lexer) include(cur string, f []string, pos Pos) {
	if len(f) < 2 {
		lx.diags.errorf(pos, "%s needs a file name", f[0])
		return
	}
	mode := strings.TrimPrefix(f[0], "include")
	pattern := strings.Join(f[1:], " ")
	if !filepath.IsAbs(pattern) {
		pattern = filepath.Join(filepath.Dir(cur), pattern)
	}
	var matches []string
	alts := expandBraces(pattern)
	if len(alts) > maxBraceAlts {
		lx.diags.errorf(pos, "include %s expands to more than %d patterns", pattern, maxBraceAlts)
		return
	}
	for _, p := range alts {
		m, err := lx.fs.Glob(p)
		if err != nil {
			lx.diags.errorf(pos, "include %s: %v", p, err)
			continue
		}
		if len(m) == 0 && strings.ContainsAny(mode, "ba") {
			lx.diags.errorf(pos, "include %s matches no file", p)
		}
		matches = append(matches, m...)
	}
	sort.Strings(matches)
	if len(matches) == 0 && strings.ContainsAny(mode, "mwa") {
		lx.diags.errorf(pos, "include %s matches no file", pattern)
	}
	for _, m := range matches {
		lx.readFile(m, pos)
	}
}

// expandBraces expands csh-style {a,b} alternatives, which filepath.Glob
// does not know.
func expandBraces(p string) []string {
	open := strings.IndexByte(p, '{')
	if open < 0 {
		return []string{p}
	}
	depth := 0
	start := open + 1
	var alts []string
	for i := open; i < len(p); i++ {
		switch p[i] {
		case '{':
			depth++
		case ',':
			if depth == 1 {
				alts = append(alts, p[start:i])
				start = i + 1
			}
		case '}':
			depth--
			if depth == 0 {
				alts = append(alts, p[start:i])
				var out []string
				for _, a := range alts {
					out = append(out, expandBraces(p[:open]+a+p[i+1:])...)
					if len(out) > maxBraceAlts {
						return out
					}
				}
				return out
			}
		}
	}
	return []string{p}
}
