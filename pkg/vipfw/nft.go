package vipfw

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// Firewall applies Plans to the kernel over nftables netlink. It is safe
// for concurrent use; halod calls it from the VRRP event loop.
type Firewall struct {
	mu   sync.Mutex
	conn *nftables.Conn
	plan *Plan
	log  *slog.Logger
	ns   int // network namespace fd of conn for our own netlink socket (0: the current one)
}

// Option tunes Open.
type Option func(*Firewall)

// NetNS names the network namespace conn works in, for the one message
// the firewall sends on its own socket (rawset.go).
func NetNS(fd int) Option { return func(f *Firewall) { f.ns = fd } }

// Open connects to nftables (conn nil: a new netlink connection) and
// removes tables a previous run left, as keepalived does before it creates
// its own: after a crash the old drop set could otherwise block VIPs that no
// instance holds any more.
func Open(cfg Config, conn *nftables.Conn, log *slog.Logger, opts ...Option) (*Firewall, error) {
	if conn == nil {
		c, err := nftables.New(nftables.AsLasting())
		if err != nil {
			return nil, fmt.Errorf("nftables: %w", err)
		}
		conn = c
	}
	f := &Firewall{conn: conn, plan: NewPlan(cfg), log: log}
	for _, o := range opts {
		o(f)
	}
	if err := f.apply(f.plan.Start()); err != nil {
		return nil, err
	}
	return f, nil
}

// Block makes the VIPs dropped for owner exactly vips (empty: none).
func (f *Firewall) Block(owner string, vips []VIP) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.plan == nil {
		return errors.New("nftables: firewall closed")
	}
	elems := make([]Elem, 0, len(vips))
	for _, v := range vips {
		elems = append(elems, ElemOf(f.plan.cfg, v))
	}
	next, ops := f.plan.Block(owner, elems)
	if err := f.apply(ops); err != nil {
		return err
	}
	f.plan = next
	return nil
}

// SetVMAC records owner's use_vmac interface, a link per family (none: it
// is gone): keepalived's VMAC map and rules
// (docs/keepalived.md#use-vmac-nftables).
func (f *Firewall) SetVMAC(owner string, ls []VMACLink) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.plan == nil {
		return errors.New("nftables: firewall closed")
	}
	next, ops := f.plan.SetVMAC(owner, ls)
	if err := f.apply(ops); err != nil {
		return err
	}
	f.plan = next
	return nil
}

// Unblock releases owner's VIPs.
func (f *Firewall) Unblock(owner string) error { return f.Block(owner, nil) }

// Blocked lists what is dropped now.
func (f *Firewall) Blocked() []Elem {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.plan == nil {
		return nil
	}
	return f.plan.Blocked()
}

// Close deletes the tables and the connection, as keepalived does on exit.
func (f *Firewall) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.plan == nil {
		return nil
	}
	_, ops := f.plan.Close()
	err := f.apply(ops)
	f.plan = nil
	return errors.Join(err, f.conn.CloseLasting())
}

// apply sends ops as one batch (stale-table deletes each on their own, as
// they depend on what exists).
func (f *Firewall) apply(ops []Op) error {
	if len(ops) == 0 {
		return nil
	}
	cfg := f.plan.cfg
	for _, op := range ops {
		if op.Kind == OpDelStale {
			t := table(cfg, op.Family)
			if _, err := f.conn.ListTableOfFamily(t.Name, t.Family); err != nil {
				if errors.Is(err, unix.ENOENT) {
					continue
				}
				return fmt.Errorf("nftables: look for table %s %s: %w", op.Family, t.Name, err)
			}
			f.log.Info("deleting nftables table left from an earlier run", "table", op.Family.String()+" "+t.Name)
			f.conn.DelTable(t)
			if err := f.conn.Flush(); err != nil {
				return fmt.Errorf("nftables: delete table %s %s: %w", op.Family, t.Name, err)
			}
			continue
		}
		if err := f.queue(cfg, op); err != nil {
			return err
		}
	}
	if err := f.conn.Flush(); err != nil {
		return fmt.Errorf("nftables: %v: %w", ops, err)
	}
	for _, op := range ops {
		if op.Kind != OpDelStale {
			f.log.Debug("nftables", "op", op.String())
		}
	}
	return nil
}

func (f *Firewall) queue(cfg Config, op Op) error {
	switch op.Kind {
	case OpAddTable:
		return f.add(TableRuleset(cfg, op.Family))
	case OpAddLinkLocal:
		return f.add(LinkLocalRuleset(cfg, op.Set))
	case OpAddElems, OpDelElems:
		s := &nftables.Set{Table: table(cfg, op.Family), Name: op.Set}
		els := make([]nftables.SetElement, len(op.Elems))
		for i, e := range op.Elems {
			els[i] = nftables.SetElement{Key: ElemKey(e)}
		}
		if op.Kind == OpAddElems {
			return f.conn.SetAddElements(s, els)
		}
		return f.conn.SetDeleteElements(s, els)
	case OpDelTable:
		f.conn.DelTable(table(cfg, op.Family))
	case OpAddVMACTable:
		return f.add(VMACRuleset(cfg, op.Family))
	case OpAddVMACElems, OpDelVMACElems:
		t := table(cfg, op.Family)
		mapEls, setEls := vmacElems(op.Links)
		sets := []struct {
			s   *nftables.Set
			els []nftables.SetElement
		}{{&nftables.Set{Table: t, Name: SetVMACMap, IsMap: true, KeyType: nftables.TypeIFIndex, DataType: nftables.TypeIFIndex}, mapEls},
			{&nftables.Set{Table: t, Name: SetVMAC, KeyType: nftables.TypeIFIndex}, setEls}}
		for _, x := range sets {
			if len(x.els) == 0 {
				continue
			}
			var err error
			if op.Kind == OpAddVMACElems {
				err = f.conn.SetAddElements(x.s, x.els)
			} else {
				err = f.conn.SetDeleteElements(x.s, x.els)
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

func (f *Firewall) add(rs Ruleset) error {
	if len(rs.Chains) > 0 {
		f.conn.AddTable(rs.Table)
	}
	for _, c := range rs.Chains {
		f.conn.AddChain(c)
	}
	for _, s := range rs.Sets {
		if s.Set.IsMap && s.Set.DataType.Name == nftables.TypeIFIndex.Name {
			// The table and chain queued so far first, then the map
			// on its own (rawset.go).
			if err := f.conn.Flush(); err != nil {
				return fmt.Errorf("nftables: table %s: %w", rs.Table.Name, err)
			}
			if err := sendBatch(f.ns, ifindexMapMsg(rs.Table, s.Set.Name)); err != nil {
				return fmt.Errorf("nftables: map %s: %w", s.Set.Name, err)
			}
			continue
		}
		if err := f.conn.AddSet(s.Set, s.Elems); err != nil {
			return fmt.Errorf("nftables: set %s: %w", s.Set.Name, err)
		}
	}
	for _, r := range rs.Rules {
		f.conn.AddRule(r)
	}
	return nil
}
