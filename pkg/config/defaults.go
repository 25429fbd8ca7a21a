package config

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Every default halo fills in lives in this file, and each one is
// keepalived 2.2.7's (docs/keepalived.md#defaults). The builder records
// every setting the file gives (Config.given, keyed by the address of the
// model field it set), and a default fills only a field that was not given:
// a value written as 0 stays 0. Defaults that were once filled wherever a
// field happened to be zero are how `garp_master_delay 0` became 5.
//
// The checker chain (virtual_server → real_server → checker) keeps its own
// set bits in CheckerDefaults and Checker, because those values are copied
// down the chain; resolveCheckers below is its one place.

// given is the record of explicitly set fields.
type given map[any]bool

func (g given) mark(p any)     { g[p] = true }
func (g given) has(p any) bool { return g[p] }

// keepalived's values for what a config leaves out.
const (
	defGARPDelay         = Duration(5 * time.Second) // vrrp_garp_master_delay
	defGARPRepeat        = 5                         // vrrp_garp_master_repeat
	defGARPRefreshRepeat = 1                         // vrrp_garp_master_refresh_repeat
	defPriority          = 100
	defOwnerPriority     = 255 // priority with `state MASTER` and no priority
	defAdvertInt         = Duration(time.Second)
	defVRRPVersion       = 2
	defDownTimerAdverts  = 3
	defSMTPTimeout       = Duration(30 * time.Second)
	defScriptInterval    = Duration(time.Second)
	defScheduler         = "wlc"
	defMethod            = "NAT"
	defProtocol          = "UDP" // keepalived 2.2.7, with a warning
	defQuorum            = 1
	defWeight            = 1 // real server
	defTrackFileWeight   = 1
	defDelayLoop         = Duration(60 * time.Second)
	defRulePriority      = 16384 // virtual_rules / static_rules without a preference
)

// dataplane block (halo's extension): the XDP maps. The timeouts are IPVS's
// (ipvsadm -L --timeout: 900 120 300).
const (
	defFlowTableSize = 262144
	defTCPTimeout    = Duration(900 * time.Second)
	defTCPFinTimeout = Duration(120 * time.Second)
	defUDPTimeout    = Duration(300 * time.Second)
	defMaxServices   = 1024
	defMaxReals      = 131072
)

// bgp block (halo's extension); a neighbor's port and hold time are BGP's.
const (
	defBGPListenPort = -1
	defBGPHoldTime   = 90
	defBGPPort       = 179
)

var (
	defMcastGroup4 = netip.MustParseAddr("224.0.0.18")
	defMcastGroup6 = netip.MustParseAddr("ff02::12")
)

// fillDefaults runs once the whole file is built: globals first, because
// instances inherit from them.
func fillDefaults(c *Config, d *Diags) {
	set := c.given
	g := &c.Global
	if !set.has(&g.RouterID) && g.RouterID == "" {
		g.RouterID = shortHostname()
	}
	if !g.VRRPMcastGroup4.IsValid() {
		g.VRRPMcastGroup4 = defMcastGroup4
	}
	if !g.VRRPMcastGroup6.IsValid() {
		g.VRRPMcastGroup6 = defMcastGroup6
	}
	if !set.has(&g.VRRPVersion) {
		g.VRRPVersion = defVRRPVersion
	}
	if !set.has(&g.SMTPConnectTimeout) {
		g.SMTPConnectTimeout = defSMTPTimeout
	}
	if !set.has(&g.DownTimerAdverts) {
		g.DownTimerAdverts = defDownTimerAdverts
	}
	globalGARP(&g.GARP, set)
	for _, s := range c.Scripts {
		scriptDefaults(s, set)
	}
	for _, tf := range c.TrackFiles {
		if !set.has(&tf.Weight) {
			tf.Weight = defTrackFileWeight
		}
	}
	for _, in := range c.Instances {
		instanceDefaults(in, g, set, d)
	}
	for _, vs := range c.VirtualServers {
		vsDefaults(vs, set, d)
		resolveCheckers(vs)
		for _, rs := range vs.Reals {
			for _, ck := range rs.Checkers {
				ck.LogAllFailures = ck.LogAllFailures || rs.Defaults.LogAllFailures || c.Global.CheckerLogAllFailures
			}
		}
	}
	dataplaneDefaults(&c.Dataplane, set)
	bgpDefaults(c.BGP, set, d)
	firewallDefaults(c, d)
}

// globalGARP: the lower-priority burst defaults to the master burst's
// settings, as keepalived resolves them once global_defs is read.
func globalGARP(gp *GARP, set given) {
	if !set.has(&gp.MasterDelay) {
		gp.MasterDelay = defGARPDelay
	}
	if !set.has(&gp.MasterRepeat) {
		gp.MasterRepeat = defGARPRepeat
	}
	if !set.has(&gp.MasterRefreshRepeat) {
		gp.MasterRefreshRepeat = defGARPRefreshRepeat
	}
	if !set.has(&gp.LowerPrioDelay) {
		gp.LowerPrioDelay = gp.MasterDelay
	}
	if !set.has(&gp.LowerPrioRepeat) {
		gp.LowerPrioRepeat = gp.MasterRepeat
	}
}

func scriptDefaults(s *VRRPScript, set given) {
	if !set.has(&s.Interval) {
		s.Interval = defScriptInterval
	}
	if !set.has(&s.Timeout) {
		s.Timeout = s.Interval
	}
	if !set.has(&s.Rise) {
		s.Rise = 1
	}
	if !set.has(&s.Fall) {
		s.Fall = 1
	}
}

func instanceDefaults(in *VRRPInstance, g *Global, set given, d *Diags) {
	if !set.has(&in.Priority) {
		in.Priority = defPriority
		if in.State == "MASTER" {
			in.Priority = defOwnerPriority
		}
	}
	if in.State == "" {
		in.State = "BACKUP"
		if in.Priority == 255 {
			in.State = "MASTER"
		}
	}
	if !set.has(&in.AdvertInt) {
		in.AdvertInt = defAdvertInt
	}
	in.Family = "inet"
	for _, v := range in.VIPs {
		if v.Prefix.Addr().Is6() {
			in.Family = "inet6"
			break
		}
	}
	if len(in.VIPs) == 0 && in.UnicastSrcIP.Is6() {
		in.Family = "inet6"
	}
	if !set.has(&in.Accept) {
		in.Accept = true // strict mode changes this in validate
	}
	in.SkipCheckAdvAddr = in.SkipCheckAdvAddr || g.SkipCheckAdvAddr
	in.CheckUnicastSrc = in.CheckUnicastSrc || g.CheckUnicastSrc
	in.LowerPrioNoAdvert = in.LowerPrioNoAdvert || g.LowerPrioNoAdvert
	in.HigherPrioSendAdvert = in.HigherPrioSendAdvert || g.HigherPrioSendAdvert
	in.V3ChecksumAsV2 = in.V3ChecksumAsV2 || g.V3ChecksumAsV2
	in.StrictMode = in.StrictMode || g.VRRPStrict
	if !set.has(&in.Version) {
		in.Version = g.VRRPVersion
		if in.Family == "inet6" {
			in.Version = 3
		}
	}
	if in.StrictMode {
		in.LowerPrioNoAdvert = true
	}
	instanceGARP(in, &g.GARP, set, d)
}

// instanceGARP: an instance takes the global value of every GARP setting it
// does not give. (keepalived copies the globals when it meets the instance,
// so a global_defs written after an instance does not reach it there; halo
// applies global_defs wherever it is.) The lower-priority burst is off in strict mode, and a
// non-zero one given in strict mode is reset with keepalived's message.
func instanceGARP(in *VRRPInstance, gp *GARP, set given, d *Diags) {
	ip := &in.GARP
	inherit := func(dst, src *Duration) {
		if !set.has(dst) {
			*dst = *src
		}
	}
	inheritInt := func(dst, src *int) {
		if !set.has(dst) {
			*dst = *src
		}
	}
	inherit(&ip.MasterDelay, &gp.MasterDelay)
	inheritInt(&ip.MasterRepeat, &gp.MasterRepeat)
	inherit(&ip.MasterRefresh, &gp.MasterRefresh)
	inheritInt(&ip.MasterRefreshRepeat, &gp.MasterRefreshRepeat)
	inherit(&ip.Interval, &gp.Interval)
	inherit(&ip.GNAInterval, &gp.GNAInterval)
	ip.MinGARP = ip.MinGARP || gp.MinGARP
	switch {
	case !set.has(&ip.LowerPrioRepeat) && in.StrictMode:
		ip.LowerPrioRepeat = 0
	case !set.has(&ip.LowerPrioRepeat):
		ip.LowerPrioRepeat = gp.LowerPrioRepeat
	case in.StrictMode && ip.LowerPrioRepeat != 0:
		d.warnf(in.Pos, "(%s) Strict mode requires no repeat garps - resetting", in.Name)
		ip.LowerPrioRepeat = 0
	}
	switch {
	case !set.has(&ip.LowerPrioDelay) && in.StrictMode:
		ip.LowerPrioDelay = 0
	case !set.has(&ip.LowerPrioDelay):
		ip.LowerPrioDelay = gp.LowerPrioDelay
	case in.StrictMode && ip.LowerPrioDelay != 0:
		d.warnf(in.Pos, "(%s) Strict mode requires no repeat garp delay - resetting", in.Name)
		ip.LowerPrioDelay = 0
	}
}

// vsDefaults: keepalived 2.2.7 warns for each of protocol, scheduler and
// forwarding method left out (so `keepalived -t` exits 5), and a service
// without `protocol` is UDP. A fwmark service has no protocol.
func vsDefaults(vs *VirtualServer, set given, d *Diags) {
	switch {
	case vs.FWMark != 0:
		vs.Protocol = ""
	case !set.has(&vs.Protocol):
		d.warnf(vs.Pos, "Virtual server %s: no protocol set - defaulting to UDP", vsLabel(vs, "none"))
		vs.Protocol = defProtocol
	}
	if !set.has(&vs.Scheduler) {
		d.warnf(vs.Pos, "Virtual server %s: no scheduler set, setting default '%s'", vsLabel(vs, vs.Protocol), defScheduler)
		vs.Scheduler = defScheduler
	}
	if !set.has(&vs.Method) {
		d.warnf(vs.Pos, "Virtual server %s: no forwarding method set, setting default %s", vsLabel(vs, vs.Protocol), defMethod)
		vs.Method = defMethod
	}
	if !set.has(&vs.Quorum) {
		vs.Quorum = defQuorum
	}
	if vs.OPS && vs.FWMark == 0 && vs.Protocol != "UDP" {
		d.warnf(vs.Pos, "Virtual server %s: one packet scheduling requires UDP - resetting", vsLabel(vs, vs.Protocol))
		vs.OPS = false
	}
	if !vs.Defaults.dlSet {
		vs.Defaults.DelayLoop = defDelayLoop
	}
	if vs.FWMark != 0 {
		for _, rs := range vs.Reals {
			if rs.Port != 0 {
				d.warnf(rs.Pos, "fwmark virtual server %s, real server [%s]:none:%d has port specified - clearing", vsLabel(vs, ""), rs.Addr, rs.Port)
				rs.Port = 0
			}
		}
	}
	reals := vs.Reals
	if vs.SorryServer != nil {
		reals = append(append([]*RealServer(nil), reals...), vs.SorryServer)
	}
	for _, rs := range reals {
		if !set.has(&rs.Weight) {
			rs.Weight = defWeight
		}
		if !set.has(&rs.Inhibit) && rs != vs.SorryServer {
			rs.Inhibit = vs.Inhibit
		}
	}
	quorumFits(vs, d)
}

// quorumFits does what keepalived does to a quorum the real servers can
// never reach, and to a hysteresis that would make it meaningless. Where
// keepalived sets an unsigned hysteresis to quorum-1 with quorum 0 (and so
// to 4294967295), halo sets 0.
func quorumFits(vs *VirtualServer, d *Diags) {
	if len(vs.Reals) == 0 {
		return // dropped in validate, with keepalived's message
	}
	total := 0
	for _, rs := range vs.Reals {
		total += rs.Weight
	}
	name := vsLabel(vs, vs.Protocol)
	if vs.Quorum > total {
		d.warnf(vs.Pos, "Warning - quorum %d for %s exceeds total weight of real servers %d, reducing quorum to %d", vs.Quorum, name, total, total)
		vs.Quorum = total
	}
	if vs.Hysteresis > 0 && vs.Hysteresis >= vs.Quorum {
		h := max(vs.Quorum-1, 0)
		d.warnf(vs.Pos, "Virtual server %s: hysteresis %d >= quorum %d; setting hysteresis to %d", name, vs.Hysteresis, vs.Quorum, h)
		vs.Hysteresis = h
	}
}

func dataplaneDefaults(dp *Dataplane, set given) {
	if dp.Backend == "" {
		// Without halo's block, a keepalived.conf means IPVS, as it always
		// has; `halod --dataplane` overrides.
		dp.Backend = "ipvs"
	}
	if dp.XDPMode == "" {
		dp.XDPMode = "auto"
	}
	if dp.FlowTracking == "" {
		dp.FlowTracking = "on_change"
	}
	if dp.SelectionHash == "" {
		dp.SelectionHash = "murmur3"
	}
	if !set.has(&dp.FlowTableSize) {
		dp.FlowTableSize = defFlowTableSize
	}
	if !set.has(&dp.TCPTimeout) {
		dp.TCPTimeout = defTCPTimeout
	}
	if !set.has(&dp.TCPFinTimeout) {
		dp.TCPFinTimeout = defTCPFinTimeout
	}
	if !set.has(&dp.UDPTimeout) {
		dp.UDPTimeout = defUDPTimeout
	}
	if !set.has(&dp.MaxServices) {
		dp.MaxServices = defMaxServices
	}
	if !set.has(&dp.MaxReals) {
		dp.MaxReals = defMaxReals
	}
}

// resolveCheckers applies inheritance virtual_server → real_server →
// checker and keepalived's per-checker defaults.
func resolveCheckers(vs *VirtualServer) {
	for _, rs := range vs.Reals {
		rd := rs.Defaults
		if !rd.dlSet {
			rd.DelayLoop = vs.Defaults.DelayLoop
		}
		if !rd.ctSet {
			rd.ConnectTimeout, rd.ctSet = vs.Defaults.ConnectTimeout, vs.Defaults.ctSet
		}
		if !rd.retrySet {
			rd.Retry, rd.retrySet = vs.Defaults.Retry, vs.Defaults.retrySet
		}
		if !rd.dbrSet {
			rd.DelayBeforeRetry, rd.dbrSet = vs.Defaults.DelayBeforeRetry, vs.Defaults.dbrSet
		}
		if rd.Warmup == nil {
			rd.Warmup = vs.Defaults.Warmup
		}
		rd.Alpha = rd.Alpha || vs.Defaults.Alpha
		rd.LogAllFailures = rd.LogAllFailures || vs.Defaults.LogAllFailures
		if rd.VirtualHost == "" {
			rd.VirtualHost = vs.Defaults.VirtualHost
		}
		rs.Defaults = rd
		for _, c := range rs.Checkers {
			if !c.dlSet {
				c.DelayLoop = rd.DelayLoop
			}
			if !c.ctSet {
				c.ConnectTimeout = rd.ConnectTimeout
				if !rd.ctSet {
					c.ConnectTimeout = secs(5)
				}
			}
			if !c.retrySet {
				c.Retry = rd.Retry
				if !rd.retrySet {
					switch c.Type {
					case "DNS_CHECK":
						c.Retry = 3
					case "MISC_CHECK":
						c.Retry = 0
					default:
						c.Retry = 1
					}
				}
			}
			if !c.dbrSet {
				c.DelayBeforeRetry = rd.DelayBeforeRetry
				if !rd.dbrSet {
					switch c.Type {
					case "HTTP_GET", "SSL_GET":
						c.DelayBeforeRetry = secs(3)
					case "DNS_CHECK":
						c.DelayBeforeRetry = c.DelayLoop
					default:
						c.DelayBeforeRetry = secs(1)
					}
				}
			}
			if !c.warmupSet {
				// keepalived's default warmup is a random 0..delay_loop; the
				// model records the bound and the scheduler draws the jitter.
				c.Warmup = c.DelayLoop
				if rd.Warmup != nil {
					c.Warmup = *rd.Warmup
				}
			}
			c.Alpha = c.Alpha || rd.Alpha
			if c.VirtualHost == "" {
				c.VirtualHost = rd.VirtualHost
			}
			if c.Type == "MISC_CHECK" && c.MiscTimeout == 0 {
				c.MiscTimeout = c.DelayLoop
			}
			if c.Type == "DNS_CHECK" {
				if c.DNSType == "" {
					c.DNSType = "SOA"
				}
				if c.DNSName == "" {
					c.DNSName = "."
				}
			}
			if c.Type == "UDP_CHECK" && c.MaxReplyLength == 0 {
				c.MaxReplyLength = 255
			}
			if (c.Type == "HTTP_GET" || c.Type == "SSL_GET") && c.HTTPProtocol == "" {
				c.HTTPProtocol = "1.0"
			}
			for _, u := range c.URLs {
				if len(u.StatusCodes) == 0 {
					u.StatusCodes = []StatusRange{{200, 299}}
				}
			}
		}
	}
}

// vsLabel names a virtual server as keepalived's messages do:
// [ADDR]:proto:PORT, [GROUP]:PORT or FWM N.
func vsLabel(vs *VirtualServer, proto string) string {
	switch {
	case vs.FWMark != 0:
		return fmt.Sprintf("FWM %d", vs.FWMark)
	case vs.Group != "":
		return fmt.Sprintf("[%s]:%d", vs.Group, vs.Port)
	}
	if proto == "" {
		proto = "none"
	}
	return fmt.Sprintf("[%s]:%s:%d", vs.Addr, strings.ToLower(proto), vs.Port)
}

func bgpDefaults(g *BGP, set given, d *Diags) {
	if g == nil {
		return
	}
	if !set.has(&g.LocalAS) {
		d.errorf(g.Pos, "bgp: local_as is missing")
	}
	if !set.has(&g.ListenPort) {
		g.ListenPort = defBGPListenPort
	}
	if len(g.Neighbors) == 0 {
		d.errorf(g.Pos, "bgp: no neighbor given")
	}
	for _, nb := range g.Neighbors {
		if !set.has(&nb.HoldTime) {
			nb.HoldTime = defBGPHoldTime
		}
		if !set.has(&nb.Port) {
			nb.Port = defBGPPort
		}
	}
}
