package xdp

import (
	"errors"
	"fmt"
	"os"
)

// reattach puts the program back on a dataplane interface that was deleted
// and created again under its name (a VLAN, bond or veth the network
// configuration rebuilt): the kernel takes XDP away with the device, and
// nothing but a restart would attach it again, so the new device's VIP
// traffic would go to the stack. The old link is defunct: it is closed and
// its pin removed, and attach makes a new one as at start. An interface
// that is gone for now is left until it is back. maintain runs it with the
// other refreshes.
func (b *Backend) reattach() error {
	var errs []error
	for name, l := range b.links {
		ifi, err := netInterfaceByName(name)
		if err != nil || ifi.Index == b.onIndex[name] {
			continue
		}
		if b.opts.PinPath != "" {
			// attach would adopt a pinned link, and this one is defunct.
			if err := os.Remove(b.linkPin(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("unpin the defunct XDP link of %s: %w", name, err))
				continue
			}
		}
		l.Close()
		delete(b.links, name)
		delete(b.created, name)
		delete(b.onIndex, name)
		if err := b.attach(name); err != nil {
			errs = append(errs, err)
			continue
		}
		b.log.Info("XDP program attached again: the interface was created anew", "interface", name, "ifindex", ifi.Index)
	}
	return errors.Join(errs...)
}
