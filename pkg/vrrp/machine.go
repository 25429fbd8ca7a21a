package vrrp

import (
	"fmt"
	"net/netip"
	"time"
)

// State is a VRRP instance state.
type State int

// States (RFC 5798 §6.4 plus keepalived's FAULT and STOP).
const (
	Init State = iota
	Backup
	Master
	Fault
	Stop
)

func (s State) String() string {
	switch s {
	case Init:
		return "INIT"
	case Backup:
		return "BACKUP"
	case Master:
		return "MASTER"
	case Fault:
		return "FAULT"
	case Stop:
		return "STOP"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// OwnerPriority is the priority of the address owner.
const OwnerPriority = 255

// Config is what the state machine needs of an instance.
type Config struct {
	Version   int
	Priority  int // configured base priority; 255 makes this node the owner
	AdvertInt time.Duration
	// WantMaster is `state MASTER`; only an owner acts on it at once,
	// everyone else starts in BACKUP (keepalived 2.x).
	WantMaster   bool
	Preempt      bool // false with nopreempt
	PreemptDelay time.Duration
	// Addr is this node's primary address, compared with the master's for
	// equal-priority tie-breaks (RFC 5798 §6.4.3).
	Addr                 netip.Addr
	DownTimerAdverts     int // default 3
	LowerPrioNoAdvert    bool
	HigherPrioSendAdvert bool
}

// ActionKind is what the runner must do.
type ActionKind int

const (
	// SendAdvert sends an advertisement with Action.Priority.
	SendAdvert ActionKind = iota
	// Transition enters Action.To; the runner moves VIPs, sends GARP/NA
	// and runs notify scripts for it, in that order.
	Transition
	// GARPLowerPrio re-announces the VIPs after a lower-priority advert
	// (keepalived's garp_lower_prio_repeat).
	GARPLowerPrio
)

// Action is one step for the runner, in order.
type Action struct {
	Kind     ActionKind
	Priority int   // SendAdvert
	From, To State // Transition
	Reason   string
}

func (a Action) String() string {
	switch a.Kind {
	case SendAdvert:
		return fmt.Sprintf("advert(prio %d)", a.Priority)
	case Transition:
		return fmt.Sprintf("%s->%s (%s)", a.From, a.To, a.Reason)
	case GARPLowerPrio:
		return "garp(lower prio)"
	}
	return "?"
}

// Machine is one VRRP instance's state machine. It is not safe for
// concurrent use; the runner owns it.
type Machine struct {
	cfg        Config
	state      State
	prio       int           // effective priority
	mai        time.Duration // Master_Adver_Interval
	fault      bool          // one of the instance's own tracked objects is down
	groupFault bool          // a sync-group sibling is in FAULT (keepalived takes the whole group there)
	// held keeps the machine in INIT, showing no state, until a weight-0
	// script tracker has reported (docs/keepalived.md#init_fail-measured);
	// startWanted remembers a Start that came while held.
	held        bool
	startWanted bool

	downAt    time.Time // BACKUP: Master_Down timer
	advertAt  time.Time // MASTER: next advert
	preemptAt time.Time // BACKUP: preempt_delay running until

	// MasterAddr and MasterPrio are the last accepted master's.
	MasterAddr netip.Addr
	MasterPrio int
}

// New returns a machine in INIT.
func New(cfg Config) *Machine {
	if cfg.DownTimerAdverts <= 0 {
		cfg.DownTimerAdverts = 3
	}
	if cfg.AdvertInt <= 0 {
		cfg.AdvertInt = time.Second
	}
	return &Machine{cfg: cfg, state: Init, prio: cfg.Priority, mai: cfg.AdvertInt}
}

// State returns the current state.
func (m *Machine) State() State { return m.state }

// Priority returns the effective priority (what adverts carry).
func (m *Machine) Priority() int { return m.prio }

// MasterAdverInterval is the interval used for the down timer: the local
// one for v2, the master's (learnt) for v3.
func (m *Machine) MasterAdverInterval() time.Duration { return m.mai }

// IsOwner reports whether this node owns the addresses (priority 255).
func (m *Machine) IsOwner() bool { return m.cfg.Priority == OwnerPriority }

// SkewTime is RFC 5798's Skew_Time for the effective priority. VRRPv2 uses
// (256-prio)/256 s; v3 scales it by the master's interval, with
// keepalived's microsecond arithmetic.
func (m *Machine) SkewTime() time.Duration {
	p := int64(256 - m.prio)
	if m.cfg.Version == 2 {
		return time.Duration(p * int64(time.Second) / 256)
	}
	cs := int64(m.mai / (10 * time.Millisecond))
	return time.Duration((p*cs*625)/16) * time.Microsecond
}

// MasterDownInterval is down_timer_adverts × Master_Adver_Interval + skew.
func (m *Machine) MasterDownInterval() time.Duration {
	return time.Duration(m.cfg.DownTimerAdverts)*m.mai + m.SkewTime()
}

// Deadline is when Tick must next be called; zero when no timer runs.
func (m *Machine) Deadline() time.Time {
	switch m.state {
	case Backup:
		return m.downAt
	case Master:
		return m.advertAt
	}
	return time.Time{}
}

func (m *Machine) advert() Action { return Action{Kind: SendAdvert, Priority: m.prio} }

func (m *Machine) to(s State, reason string) Action {
	a := Action{Kind: Transition, From: m.state, To: s, Reason: reason}
	m.state = s
	return a
}

func (m *Machine) becomeMaster(now time.Time, reason string) []Action {
	// The advert goes first so the old master drops its VIPs before our
	// GARPs arrive (docs/keepalived.md#becoming-master).
	m.advertAt = now.Add(m.cfg.AdvertInt)
	m.preemptAt = time.Time{}
	m.mai = m.cfg.AdvertInt
	return []Action{m.advert(), m.to(Master, reason)}
}

func (m *Machine) becomeBackup(now time.Time, reason string) Action {
	m.downAt = now.Add(m.MasterDownInterval())
	return m.to(Backup, reason)
}

// Start leaves INIT: the owner becomes MASTER at once, everyone else BACKUP
// with the down timer running (so even `state MASTER` waits
// Master_Down_Interval, as keepalived 2.x does).
func (m *Machine) Start(now time.Time) []Action {
	if m.state != Init {
		return nil
	}
	if m.held {
		m.startWanted = true
		return nil
	}
	if m.fault {
		return []Action{m.to(Fault, "tracked object down at start")}
	}
	if m.groupFault {
		return []Action{m.to(Fault, "sync group member in FAULT at start")}
	}
	if m.IsOwner() {
		return m.becomeMaster(now, "address owner (priority 255)")
	}
	m.mai = m.cfg.AdvertInt
	return []Action{m.becomeBackup(now, "start")}
}

// SetHold holds the machine in INIT while a weight-0 script tracker has not
// reported: keepalived 2.2.7 shows no state (and notifies nothing) for such
// an instance until the script's first result, init_fail or not, then FAULT if it failed
// or BACKUP if it passed. A Start that came while held happens on release,
// with the faults and priority known by then. Holding only matters before
// the start.
func (m *Machine) SetHold(now time.Time, hold bool) []Action {
	m.held = hold
	if hold || !m.startWanted || m.state != Init {
		return nil
	}
	m.startWanted = false
	return m.Start(now)
}

// Held reports whether a Start is waiting for SetHold(false).
func (m *Machine) Held() bool { return m.held && m.state == Init }

// Receive handles a validated advert for this instance from src.
func (m *Machine) Receive(now time.Time, src netip.Addr, a *Advert) []Action {
	prio := int(a.Priority)
	switch m.state {
	case Backup:
		if prio == 0 {
			// The master is leaving: take over after the skew only.
			m.downAt = now.Add(m.SkewTime())
			return nil
		}
		accept := !m.cfg.Preempt || prio >= m.prio
		if !accept && m.cfg.PreemptDelay > 0 {
			if m.preemptAt.IsZero() {
				m.preemptAt = now.Add(m.cfg.PreemptDelay)
			}
			accept = now.Before(m.preemptAt)
		}
		if !accept {
			// Discarding lets the down timer run out: preemption takes a
			// full Master_Down_Interval, as in keepalived.
			return nil
		}
		if prio >= m.prio {
			m.preemptAt = time.Time{}
		}
		if m.cfg.Version == 3 && a.Interval > 0 {
			m.mai = time.Duration(a.Interval) * 10 * time.Millisecond
		}
		m.MasterAddr, m.MasterPrio = src, prio
		m.downAt = now.Add(m.MasterDownInterval())
		return nil
	case Master:
		if prio == 0 {
			m.advertAt = now.Add(m.cfg.AdvertInt)
			return []Action{m.advert()}
		}
		cmp := src.Compare(m.cfg.Addr)
		if prio > m.prio || (prio == m.prio && cmp > 0) {
			var out []Action
			if m.cfg.HigherPrioSendAdvert {
				out = append(out, m.advert())
			}
			if m.cfg.Version == 3 && a.Interval > 0 {
				m.mai = time.Duration(a.Interval) * 10 * time.Millisecond
			}
			m.MasterAddr, m.MasterPrio = src, prio
			reason := fmt.Sprintf("higher priority %d advert from %s", prio, src)
			if prio == m.prio {
				reason = fmt.Sprintf("equal priority %d advert from higher address %s", prio, src)
			}
			return append(out, m.becomeBackup(now, reason))
		}
		if prio == m.prio && cmp == 0 {
			return nil // our own advert looped back
		}
		// A lower priority master: answer at once to force a new election
		// and re-announce the VIPs, healing a split brain quickly.
		if m.cfg.LowerPrioNoAdvert {
			return nil
		}
		m.advertAt = now.Add(m.cfg.AdvertInt)
		return []Action{m.advert(), {Kind: GARPLowerPrio, Reason: fmt.Sprintf("lower priority %d advert from %s", prio, src)}}
	}
	return nil // INIT, FAULT and STOP ignore adverts
}

// Tick fires expired timers.
func (m *Machine) Tick(now time.Time) []Action {
	switch m.state {
	case Backup:
		if !m.downAt.IsZero() && !now.Before(m.downAt) {
			return m.becomeMaster(now, "master down timer expired")
		}
	case Master:
		if !now.Before(m.advertAt) {
			m.advertAt = m.advertAt.Add(m.cfg.AdvertInt)
			if m.advertAt.Before(now) {
				m.advertAt = now.Add(m.cfg.AdvertInt)
			}
			return []Action{m.advert()}
		}
	}
	return nil
}

// SetPriority sets the effective priority computed from the trackers. It
// is clamped to 1..254; the owner's priority never changes.
func (m *Machine) SetPriority(now time.Time, p int) []Action {
	if m.IsOwner() {
		return nil
	}
	p = max(1, min(254, p))
	if p == m.prio {
		return nil
	}
	m.prio = p
	if m.state == Master {
		// Tell the backups now rather than at the next interval, so a
		// tracker that lowers us hands over promptly.
		m.advertAt = now.Add(m.cfg.AdvertInt)
		return []Action{m.advert()}
	}
	return nil
}

// SetFault enters or leaves FAULT for the instance's own reasons
// (interface down, weight-0 tracker failed).
func (m *Machine) SetFault(now time.Time, fault bool, reason string) []Action {
	m.fault = fault
	return m.settleFault(now, reason)
}

// OwnFault reports whether the instance's own trackers hold it in FAULT
// (as opposed to a sync-group sibling's).
func (m *Machine) OwnFault() bool { return m.fault }

// SetGroupFault puts the instance in FAULT because a sync-group sibling is
// there, or lets it leave once no sibling is: keepalived moves the whole
// group to FAULT, not only the member whose tracker failed.
func (m *Machine) SetGroupFault(now time.Time, fault bool, reason string) []Action {
	m.groupFault = fault
	return m.settleFault(now, reason)
}

func (m *Machine) settleFault(now time.Time, reason string) []Action {
	fault := m.fault || m.groupFault
	switch {
	case fault && m.state == Master:
		// Two priority-0 adverts on the way to FAULT, as keepalived.
		zero := Action{Kind: SendAdvert, Priority: 0}
		return []Action{zero, zero, m.to(Fault, reason)}
	case fault && m.state == Backup:
		return []Action{m.to(Fault, reason)}
	case !fault && m.state == Fault:
		if m.IsOwner() {
			return append([]Action{m.to(Backup, reason)}, m.becomeMaster(now, "address owner (priority 255)")...)
		}
		m.mai = m.cfg.AdvertInt
		return []Action{m.becomeBackup(now, reason)}
	}
	return nil
}

// Shutdown stops the instance: a master sends priority 0 first so a backup
// takes over after the skew time instead of Master_Down_Interval.
func (m *Machine) Shutdown(now time.Time) []Action {
	switch m.state {
	case Master:
		return []Action{{Kind: SendAdvert, Priority: 0}, m.to(Stop, "shutdown")}
	case Stop:
		return nil
	}
	return []Action{m.to(Stop, "shutdown")}
}

// ForceMaster makes a BACKUP member of a sync group follow a sibling that
// became MASTER.
func (m *Machine) ForceMaster(now time.Time, reason string) []Action {
	if m.state != Backup {
		return nil
	}
	return m.becomeMaster(now, reason)
}

// ForceBackup makes a MASTER member follow a sibling that left MASTER.
func (m *Machine) ForceBackup(now time.Time, reason string) []Action {
	if m.state != Master {
		return nil
	}
	return []Action{m.becomeBackup(now, reason)}
}

// Config returns the configuration the machine runs with.
func (m *Machine) Config() Config { return m.cfg }

// Reconfigure gives a running machine a new configuration without a
// transition, as keepalived keeps an instance's state across a reload: the
// state, the master it follows and the running timers stay; a changed
// advert interval takes effect from now; a non-owner's effective priority
// is set again by the caller through SetPriority. A node that became the
// address owner takes over at once, as an owner does at start.
func (m *Machine) Reconfigure(now time.Time, cfg Config) []Action {
	if cfg.DownTimerAdverts <= 0 {
		cfg.DownTimerAdverts = 3
	}
	if cfg.AdvertInt <= 0 {
		cfg.AdvertInt = time.Second
	}
	old := m.cfg
	m.cfg = cfg
	switch {
	case cfg.Priority == OwnerPriority:
		m.prio = OwnerPriority
	case old.Priority == OwnerPriority || m.prio == OwnerPriority:
		m.prio = cfg.Priority
	}
	if cfg.PreemptDelay == 0 || !cfg.Preempt {
		m.preemptAt = time.Time{}
	}
	if cfg.AdvertInt != old.AdvertInt || cfg.Version != old.Version || cfg.DownTimerAdverts != old.DownTimerAdverts {
		switch m.state {
		case Master:
			m.mai = cfg.AdvertInt
			if next := now.Add(cfg.AdvertInt); next.Before(m.advertAt) {
				m.advertAt = next
			}
		case Backup:
			if cfg.Version == 2 || cfg.Version != old.Version {
				m.mai = cfg.AdvertInt
			}
			m.downAt = now.Add(m.MasterDownInterval())
		}
	}
	if m.IsOwner() && m.state == Backup {
		return m.becomeMaster(now, "address owner (priority 255)")
	}
	return nil
}
