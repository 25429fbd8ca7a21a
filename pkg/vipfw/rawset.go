package vipfw

import (
	"encoding/binary"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// google/nftables cannot mark a map's data as host byte order (it writes
// only the key's). keepalived's vmac_map carries both marks in the set's
// user data, and without the data one `nft list` prints the lower interface
// as a big-endian number instead of its name. So the map is created here
// with a NEWSET message of our own, in its own batch, on a netlink socket
// in the firewall's namespace; its elements and the rules using it go
// through google/nftables as everything else.

// ifindexMapMsg is the NEWSET message for an iface_index : iface_index map.
func ifindexMapMsg(t *nftables.Table, name string) netlink.Message {
	ud := userdata.AppendUint32(nil, userdata.NFTNL_UDATA_SET_KEYBYTEORDER, 1) // 1: host byte order
	ud = userdata.AppendUint32(ud, userdata.NFTNL_UDATA_SET_DATABYTEORDER, 1)
	be := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_SET_TABLE, Data: []byte(t.Name + "\x00")},
		{Type: unix.NFTA_SET_NAME, Data: []byte(name + "\x00")},
		{Type: unix.NFTA_SET_FLAGS, Data: be(unix.NFT_SET_MAP)},
		{Type: unix.NFTA_SET_KEY_TYPE, Data: be(ifindexMagic)},
		{Type: unix.NFTA_SET_KEY_LEN, Data: be(4)},
		{Type: unix.NFTA_SET_DATA_TYPE, Data: be(ifindexMagic)},
		{Type: unix.NFTA_SET_DATA_LEN, Data: be(4)},
		{Type: unix.NFTA_SET_ID, Data: be(1)}, // required; unique within the batch
		{Type: unix.NFTA_SET_USERDATA, Data: ud},
	})
	if err != nil {
		panic(err) // fixed attributes: cannot fail
	}
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWSET),
			Flags: netlink.Request | netlink.Acknowledge | netlink.Create},
		Data: append(nfgenmsg(byte(t.Family), 0), attrs...),
	}
}

// ifindexMagic is nft's datatype number for iface_index.
const ifindexMagic = 20

func nfgenmsg(family byte, resID uint16) []byte {
	return binary.BigEndian.AppendUint16([]byte{family, unix.NFNETLINK_V0}, resID)
}

// sendBatch sends msgs as one nftables batch over a new netlink socket in
// namespace ns (0: the current one) and waits for each acknowledgement.
func sendBatch(ns int, msgs ...netlink.Message) error {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: ns})
	if err != nil {
		return fmt.Errorf("nftables: netlink: %w", err)
	}
	defer c.Close()
	edge := func(typ int) netlink.Message {
		return netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(typ), Flags: netlink.Request},
			Data: nfgenmsg(unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES)}
	}
	all := append(append([]netlink.Message{edge(unix.NFNL_MSG_BATCH_BEGIN)}, msgs...), edge(unix.NFNL_MSG_BATCH_END))
	if _, err := c.SendMessages(all); err != nil {
		return fmt.Errorf("nftables: send: %w", err)
	}
	for range msgs {
		if _, err := c.Receive(); err != nil {
			return fmt.Errorf("nftables: %w", err)
		}
	}
	return nil
}
