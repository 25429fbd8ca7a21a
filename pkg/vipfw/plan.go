// Package vipfw enforces VRRP's no_accept mode the way keepalived 2.2.7 does
// with nftables: while an instance without accept mode is master, packets to
// and from its VIPs are dropped, so the addresses are held (answered by ARP
// and neighbour discovery, announced, advertised) but carry no traffic.
//
// The tables are keepalived's: "ip <table>" and "ip6 <table>" (table
// "keepalived" unless `nftables NAME` says otherwise), each with an input
// chain "in" and an output chain "out" at priority nftables_priority (-1),
// policy accept, and a set "vips" that the rules `ip daddr @vips drop` (in)
// and `ip saddr @vips drop` (out) consult. IPv6 adds neighbour solicitations
// and advertisements accepted before the drop, and link-local VIPs kept in
// "vips_link_local" (address . interface index) or "vips_link_local_name"
// (address . interface name), matched in chains "in_link_local" and
// "out_link_local". See docs/keepalived.md#no-accept.
//
// With use_vmac the same tables also get keepalived's VMAC map and the rules
// that send the VMACs' group-membership reports out of their lower
// interfaces (vmac.go, docs/keepalived.md#use-vmac-nftables).
//
// Plan is the pure part: which VIPs are blocked for which instance, and the
// steps that take the kernel from one state to the next. Firewall (nft.go)
// carries the steps out over netlink.
package vipfw

import (
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Config is the firewall's global settings (keepalived's nftables keywords).
type Config struct {
	Table    string // "" means DefaultTable
	Priority int32  // chain priority of "in" and "out"
	Counters bool   // nftables_counters: a counter on every rule
	IfIndex  bool   // nftables_ifindex: link-local VIPs always keyed by index
}

// DefaultTable and DefaultPriority are keepalived's.
const (
	DefaultTable    = "keepalived"
	DefaultPriority = -1
)

// TableName is the table the config names, or the default.
func (c Config) TableName() string {
	if c.Table == "" {
		return DefaultTable
	}
	return c.Table
}

// Family is an nftables table family: keepalived keeps IPv4 and IPv6 in
// separate tables of the same name.
type Family int

const (
	IPv4 Family = iota
	IPv6
)

func (f Family) String() string {
	if f == IPv6 {
		return "ip6"
	}
	return "ip"
}

// Set names, as keepalived's.
const (
	SetVIPs          = "vips"
	SetLinkLocal     = "vips_link_local"
	SetLinkLocalName = "vips_link_local_name"
	SetND            = "neighbor-discovery"
)

// VIP is an address to block and the interface it lives on.
type VIP struct {
	Addr    netip.Addr
	Dev     string
	Ifindex uint32
	// ByName keys a link-local VIP by interface name rather than index:
	// keepalived does so when the instance has dont_track_primary (the
	// interface may come back with another index) and nftables_ifindex
	// is not set.
	ByName bool
}

// Elem is one element of a drop set.
type Elem struct {
	Addr    netip.Addr
	Ifindex uint32 // link-local IPv6 keyed by index
	Ifname  string // link-local IPv6 keyed by name
}

// ElemOf is the set element that blocks v. Only IPv6 link-local addresses
// carry their interface: the same fe80:: address may exist on every link.
func ElemOf(cfg Config, v VIP) Elem {
	a := v.Addr.Unmap().WithZone("")
	if !a.Is6() || !a.IsLinkLocalUnicast() {
		return Elem{Addr: a}
	}
	if v.ByName && !cfg.IfIndex {
		return Elem{Addr: a, Ifname: v.Dev}
	}
	return Elem{Addr: a, Ifindex: v.Ifindex}
}

// Family is the table the element belongs to.
func (e Elem) Family() Family {
	if e.Addr.Is4() {
		return IPv4
	}
	return IPv6
}

// Set is the set the element belongs to.
func (e Elem) Set() string {
	switch {
	case e.Ifname != "":
		return SetLinkLocalName
	case e.Addr.Is6() && e.Addr.IsLinkLocalUnicast():
		return SetLinkLocal
	}
	return SetVIPs
}

func (e Elem) String() string {
	switch {
	case e.Ifname != "":
		return e.Addr.String() + " . " + e.Ifname
	case e.Set() == SetLinkLocal:
		return e.Addr.String() + " . " + strconv.FormatUint(uint64(e.Ifindex), 10)
	}
	return e.Addr.String()
}

// OpKind is what a step does.
type OpKind int

const (
	// OpDelStale deletes the table of Family if a previous run (a crash)
	// left it; keepalived does this before creating its own.
	OpDelStale OpKind = iota
	// OpAddTable creates the table of Family with its chains, "vips"
	// set and rules.
	OpAddTable
	// OpAddLinkLocal creates Set (a link-local set) and its two rules.
	OpAddLinkLocal
	// OpAddElems and OpDelElems add and remove Elems of Set.
	OpAddElems
	OpDelElems
	// OpDelTable deletes the table of Family (halod stops).
	OpDelTable
	// OpAddVMACTable creates the use_vmac map, set and rules of Family
	// (and the table and its output chain if need be).
	OpAddVMACTable
	// OpAddVMACElems and OpDelVMACElems add and remove Links.
	OpAddVMACElems
	OpDelVMACElems
)

var opNames = [...]string{"del-stale", "add-table", "add-link-local", "add-elems", "del-elems", "del-table",
	"add-vmac-table", "add-vmac-elems", "del-vmac-elems"}

func (k OpKind) String() string { return opNames[k] }

// Op is one step towards a new state.
type Op struct {
	Kind   OpKind
	Family Family
	Set    string
	Elems  []Elem
	Links  []VMACLink
}

func (o Op) String() string {
	s := o.Kind.String() + " " + o.Family.String()
	if o.Set != "" {
		s += " " + o.Set
	}
	if len(o.Elems) > 0 {
		parts := make([]string, len(o.Elems))
		for i, e := range o.Elems {
			parts[i] = e.String()
		}
		s += " {" + strings.Join(parts, ", ") + "}"
	}
	if len(o.Links) > 0 {
		parts := make([]string, len(o.Links))
		for i, l := range o.Links {
			parts[i] = strconv.FormatUint(uint64(l.Ifindex), 10) + ":" + strconv.FormatUint(uint64(l.Base), 10)
		}
		s += " {" + strings.Join(parts, ", ") + "}"
	}
	return s
}

// Plan is what is installed: the tables and link-local sets that exist and
// which owner (VRRP instance) blocks which elements. An element blocked by
// two owners (the same VIP in two instances) stays until both release it.
// Plans are values: every change returns a new Plan, so a caller whose
// netlink batch fails keeps the old one, which still matches the kernel
// (nftables applies a batch entirely or not at all).
type Plan struct {
	cfg    Config
	owners map[string][]Elem
	tables map[Family]bool // no_accept chains, sets and rules created
	sets   map[string]bool // link-local sets created
	// vmacs is each owner's use_vmac link; vmacTables the families whose
	// VMAC map and rules exist.
	vmacs      map[string][]VMACLink
	vmacTables map[Family]bool
}

// NewPlan is the state before anything is installed.
func NewPlan(cfg Config) *Plan {
	return &Plan{cfg: cfg, owners: map[string][]Elem{}, tables: map[Family]bool{}, sets: map[string]bool{},
		vmacs: map[string][]VMACLink{}, vmacTables: map[Family]bool{}}
}

// Start removes what a previous run left: both families' tables.
func (p *Plan) Start() []Op {
	return []Op{{Kind: OpDelStale, Family: IPv4}, {Kind: OpDelStale, Family: IPv6}}
}

func (p *Plan) clone() *Plan {
	n := &Plan{cfg: p.cfg, owners: maps.Clone(p.owners), tables: maps.Clone(p.tables), sets: maps.Clone(p.sets),
		vmacs: maps.Clone(p.vmacs), vmacTables: maps.Clone(p.vmacTables)}
	return n
}

func (p *Plan) refs() map[Elem]int {
	r := map[Elem]int{}
	for _, es := range p.owners {
		for _, e := range es {
			r[e]++
		}
	}
	return r
}

// Block makes owner's blocked elements exactly elems (nil releases them)
// and returns the new plan and the steps to get there.
func (p *Plan) Block(owner string, elems []Elem) (*Plan, []Op) {
	before := p.refs()
	n := p.clone()
	want := slices.Clone(elems)
	slices.SortFunc(want, compareElem)
	want = slices.Compact(want)
	if len(want) == 0 {
		delete(n.owners, owner)
	} else {
		n.owners[owner] = want
	}
	after := n.refs()

	var ops []Op
	var add, del []Elem
	for e := range after {
		if before[e] == 0 {
			add = append(add, e)
		}
	}
	for e := range before {
		if after[e] == 0 {
			del = append(del, e)
		}
	}
	slices.SortFunc(add, compareElem)
	slices.SortFunc(del, compareElem)
	// Tables and link-local sets are made in the order of the owner's
	// VIPs, as keepalived makes them (nft lists them in that order).
	var tables, sets []Op
	for _, e := range elems {
		if !slices.Contains(add, e) {
			continue
		}
		if f := e.Family(); !n.tables[f] {
			n.tables[f] = true
			tables = append(tables, Op{Kind: OpAddTable, Family: f})
		}
		if s := e.Set(); s != SetVIPs && !n.sets[s] {
			n.sets[s] = true
			sets = append(sets, Op{Kind: OpAddLinkLocal, Family: IPv6, Set: s})
		}
	}
	ops = append(append(ops, tables...), sets...)
	ops = append(ops, group(OpAddElems, add)...)
	ops = append(ops, group(OpDelElems, del)...)
	return n, ops
}

// Unblock releases owner's elements.
func (p *Plan) Unblock(owner string) (*Plan, []Op) { return p.Block(owner, nil) }

// Close returns the steps that remove everything installed, and the empty
// plan after them.
func (p *Plan) Close() (*Plan, []Op) {
	var ops []Op
	for _, f := range []Family{IPv4, IPv6} {
		if p.tables[f] || p.vmacTables[f] {
			ops = append(ops, Op{Kind: OpDelTable, Family: f})
		}
	}
	return NewPlan(p.cfg), ops
}

// Blocked lists the blocked elements, sorted.
func (p *Plan) Blocked() []Elem {
	var out []Elem
	for e := range p.refs() {
		out = append(out, e)
	}
	slices.SortFunc(out, compareElem)
	return out
}

// Owners lists who blocks e.
func (p *Plan) Owners(e Elem) []string {
	var out []string
	for o, es := range p.owners {
		if slices.Contains(es, e) {
			out = append(out, o)
		}
	}
	slices.Sort(out)
	return out
}

// group turns elements into one step per (family, set), in a fixed order.
func group(kind OpKind, elems []Elem) []Op {
	var ops []Op
	for _, f := range []Family{IPv4, IPv6} {
		for _, s := range []string{SetVIPs, SetLinkLocal, SetLinkLocalName} {
			var es []Elem
			for _, e := range elems {
				if e.Family() == f && e.Set() == s {
					es = append(es, e)
				}
			}
			if len(es) > 0 {
				ops = append(ops, Op{Kind: kind, Family: f, Set: s, Elems: es})
			}
		}
	}
	return ops
}

func compareElem(a, b Elem) int {
	if c := a.Addr.Compare(b.Addr); c != 0 {
		return c
	}
	if a.Ifindex != b.Ifindex {
		if a.Ifindex < b.Ifindex {
			return -1
		}
		return 1
	}
	return strings.Compare(a.Ifname, b.Ifname)
}
