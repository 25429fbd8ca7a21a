package xdp

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ensureBPFFS makes sure dir can hold pins: it must be on a bpf
// filesystem. When it would live under an unmounted /sys/fs/bpf, bpffs is
// mounted there (as bpftool and systemd do); anywhere else it is an error.
func ensureBPFFS(dir string) error {
	p := dir
	for {
		if _, err := os.Stat(p); err == nil {
			break
		}
		parent := filepath.Dir(p)
		if parent == p {
			break
		}
		p = parent
	}
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err == nil && st.Type == unix.BPF_FS_MAGIC {
		return nil
	}
	if strings.HasPrefix(filepath.Clean(dir)+"/", "/sys/fs/bpf/") {
		if err := unix.Mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700"); err != nil {
			return fmt.Errorf("mount bpffs on /sys/fs/bpf: %w", err)
		}
		return nil
	}
	return fmt.Errorf("%s is not on a bpf filesystem", dir)
}
