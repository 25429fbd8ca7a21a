package config

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// loadWithin runs Load and fails the test, instead of hanging it, if Load
// does not return: the property under test is that it always does.
func loadWithin(t *testing.T, path string, opts Options) (*Config, *Diags) {
	t.Helper()
	type res struct {
		cfg *Config
		d   *Diags
	}
	ch := make(chan res, 1)
	go func() {
		c, d := Load(path, opts)
		ch <- res{c, d}
	}()
	select {
	case r := <-ch:
		return r.cfg, r.d
	case <-time.After(30 * time.Second):
		t.Fatalf("Load(%s) did not return", path)
		return nil, nil
	}
}

// Every file the config makes halod read must be a regular file of bounded
// size: an include of a device, a FIFO or a directory fails with the
// include's file:line (keepalived skips such files; halo refuses them so the
// mistake is seen), and halod -t never hangs on them.
func TestIncludeMustBeRegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.conf")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(maxFileSize + 1); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	f.Close()
	cases := []struct{ target, want string }{
		{"/dev/zero", "include /dev/zero: is not a regular file (character device)"},
		{fifo, "include " + fifo + ": is not a regular file (FIFO)"},
		{dir, "include " + dir + ": is a directory"},
		{big, "include " + big + ": is larger than 16 MiB"},
	}
	for _, c := range cases {
		t.Run(filepath.Base(c.target), func(t *testing.T) {
			main := filepath.Join(t.TempDir(), "keepalived.conf")
			text := "global_defs {\n  router_id r1\n}\ninclude " + c.target + "\n"
			if err := os.WriteFile(main, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			_, d := loadWithin(t, main, Options{ConfigID: "x"})
			all := diagText(d)
			if !strings.Contains(all, main+":4: error: "+c.want) {
				t.Fatalf("want %q at %s:4 in:\n%s", c.want, main, all)
			}
			if d.ExitCode(false) != 5 {
				t.Errorf("exit code %d, want 5", d.ExitCode(false))
			}
		})
	}
}

// The main file gets the same checks and a fatal diagnostic (halod -t exits 4).
func TestMainConfigMustBeRegularFile(t *testing.T) {
	cfg, d := loadWithin(t, "/dev/zero", Options{ConfigID: "x"})
	if cfg != nil || !d.Has(Fatal) || d.ExitCode(false) != 4 {
		t.Fatalf("cfg %v exit %d:\n%s", cfg != nil, d.ExitCode(false), diagText(d))
	}
	if !strings.Contains(diagText(d), "error: cannot read config: is not a regular file (character device)") {
		t.Fatalf("diagnostics:\n%s", diagText(d))
	}
}

// A read that never returns (a hung mount) is abandoned at the deadline.
func TestReadDeadline(t *testing.T) {
	r, w := io.Pipe()
	defer w.Close()
	_, err := readBounded(r, 1<<10, 50*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "did not finish within 50ms") {
		t.Fatalf("err %v", err)
	}
	// And a reader that returns more than the limit is refused.
	_, err = readBounded(io.NopCloser(strings.NewReader(strings.Repeat("x", 2048))), 1<<10, time.Second)
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("err %v", err)
	}
}

// The bounds hold for every FS: many includes of a large file stop at the
// total, with the position of the include that crossed it.
func TestIncludeTotalBound(t *testing.T) {
	line := "# " + strings.Repeat("x", 1000) + "\n"
	big := strings.Repeat(line, (1<<20)/len(line)) // ~1 MiB of comments
	var main strings.Builder
	for i := 0; i < 80; i++ {
		main.WriteString("include /etc/big.inc\n")
	}
	fs := MapFS{"/etc/k.conf": main.String(), "/etc/big.inc": big}
	_, d := loadWithin(t, "/etc/k.conf", Options{ConfigID: "x", FS: fs})
	all := diagText(d)
	if !strings.Contains(all, "error: include /etc/big.inc: the config and its includes are larger than 64 MiB together") {
		t.Fatalf("diagnostics:\n%.2000s", all)
	}
	if !strings.HasPrefix(all, "/etc/k.conf:") {
		t.Fatalf("no file:line: %.200s", all)
	}
}

// keepalived 2.2.7 skips an executable config file; halo reads it and warns,
// so -t shows that the two would run different configs.
func TestExecutableIncludeWarns(t *testing.T) {
	dir := t.TempDir()
	inc := filepath.Join(dir, "x.inc")
	if err := os.WriteFile(inc, []byte("global_defs {\n router_id from-inc\n}\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	main := filepath.Join(dir, "k.conf")
	if err := os.WriteFile(main, []byte("include x.inc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, d := loadWithin(t, main, Options{ConfigID: "x"})
	if !strings.Contains(diagText(d), main+":1: warning: configuration file "+inc+" is executable") || d.ExitCode(false) != 5 {
		t.Fatalf("exit %d:\n%s", d.ExitCode(false), diagText(d))
	}
	if cfg.Global.RouterID != "from-inc" {
		t.Fatalf("router_id %q: the file must still be read", cfg.Global.RouterID)
	}
}
