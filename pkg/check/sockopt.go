package check

import (
	"syscall"

	"golang.org/x/sys/unix"
)

func bindToDevice(ifname string) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, ifname)
		})
		if err != nil {
			return err
		}
		return serr
	}
}
