// Package sockopt holds the socket options halo sets on more than one kind of
// socket, as net.ListenConfig / net.Dialer Control functions.
package sockopt

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// Control runs each setter on the socket's descriptor before bind/connect,
// stopping at the first error.
func Control(setters ...func(fd int) error) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			for _, set := range setters {
				if serr = set(int(fd)); serr != nil {
					return
				}
			}
		})
		if err != nil {
			return err
		}
		return serr
	}
}

// BindToDevice pins the socket to one interface: with the same address on
// several interfaces (VIPs, VMACs, labs) the routing table alone would pick
// the wrong one, and a receive socket would see other interfaces' packets.
func BindToDevice(ifname string) func(fd int) error {
	return func(fd int) error {
		return unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, ifname)
	}
}

// BindToDeviceControl is Control(BindToDevice(ifname)), the common case.
func BindToDeviceControl(ifname string) func(network, address string, c syscall.RawConn) error {
	return Control(BindToDevice(ifname))
}
