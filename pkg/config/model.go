package config

import (
	"encoding/json"
	"log/slog"
	"net/netip"
	"strconv"
	"time"
)

// Duration is a keepalived timer: seconds with up to microsecond precision.
// It prints in JSON as seconds.
type Duration time.Duration

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON prints seconds as a number.
func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(strconv.FormatFloat(time.Duration(d).Seconds(), 'f', -1, 64)), nil
}

// UnmarshalJSON reads seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*d = Duration(f * float64(time.Second))
	return nil
}

func secs(s float64) Duration { return Duration(s * float64(time.Second)) }

// Secret is a value that must never be shown: auth_pass, BGP passwords. It
// prints, logs (slog) and marshals as a fixed mask, so a dump, a status page
// or a log line cannot carry it; code that needs the value converts it with
// string(s).
type Secret string

const secretMask = "********"

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return secretMask
}

// GoString masks %#v too.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// LogValue masks the value in log/slog records.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON prints the mask (an empty secret stays empty).
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// Config is a parsed keepalived.conf with halo's extension, defaults filled in.
type Config struct {
	Global         Global           `json:"global_defs"`
	Scripts        []*VRRPScript    `json:"vrrp_scripts,omitempty"`
	TrackFiles     []*TrackFile     `json:"track_files,omitempty"`
	Instances      []*VRRPInstance  `json:"vrrp_instances,omitempty"`
	SyncGroups     []*SyncGroup     `json:"vrrp_sync_groups,omitempty"`
	VSGroups       []*VSGroup       `json:"virtual_server_groups,omitempty"`
	VirtualServers []*VirtualServer `json:"virtual_servers,omitempty"`
	StaticAddrs    []*VIP           `json:"static_ipaddress,omitempty"`
	StaticRoutes   []*Route         `json:"static_routes,omitempty"`
	StaticRules    []*Rule          `json:"static_rules,omitempty"`
	Dataplane      Dataplane        `json:"dataplane"`
	BGP            *BGP             `json:"bgp,omitempty"` // nil without a bgp block
	// Files lists every file read, the main one first.
	Files []string `json:"files"`

	given given // settings the file gave explicitly (defaults.go)
}

// Global is global_defs.
type Global struct {
	RouterID              string     `json:"router_id"`
	NotificationEmail     []string   `json:"notification_email,omitempty"`
	NotificationEmailFrom string     `json:"notification_email_from,omitempty"`
	SMTPServer            string     `json:"smtp_server,omitempty"`
	SMTPConnectTimeout    Duration   `json:"smtp_connect_timeout"`
	VRRPMcastGroup4       netip.Addr `json:"vrrp_mcast_group4"`
	VRRPMcastGroup6       netip.Addr `json:"vrrp_mcast_group6"`
	VRRPVersion           int        `json:"vrrp_version"`
	VRRPStrict            bool       `json:"vrrp_strict"`
	GARP                  GARP       `json:"garp"`
	SkipCheckAdvAddr      bool       `json:"vrrp_skip_check_adv_addr"`
	CheckUnicastSrc       bool       `json:"vrrp_check_unicast_src"`
	V3ChecksumAsV2        bool       `json:"v3_checksum_as_v2"`
	LowerPrioNoAdvert     bool       `json:"lower_prio_no_advert"`
	HigherPrioSendAdvert  bool       `json:"higher_prio_send_advert"`
	ScriptUser            string     `json:"script_user,omitempty"`
	ScriptGroup           string     `json:"script_group,omitempty"`
	EnableScriptSecurity  bool       `json:"enable_script_security"`
	NotifyFIFO            *FIFO      `json:"notify_fifo,omitempty"`
	VRRPNotifyFIFO        *FIFO      `json:"vrrp_notify_fifo,omitempty"`
	LVSNotifyFIFO         *FIFO      `json:"lvs_notify_fifo,omitempty"`
	VRRPStartupDelay      Duration   `json:"vrrp_startup_delay"`
	DownTimerAdverts      int        `json:"down_timer_adverts"`
	SMTPAlert             bool       `json:"smtp_alert"`
	CheckerLogAllFailures bool       `json:"checker_log_all_failures,omitempty"`
	NotifyPriorityChanges bool       `json:"vrrp_notify_priority_changes"`
	Firewall              Firewall   `json:"firewall"` // global_fw.go
	Pos                   Pos        `json:"-"`
}

// GARP holds gratuitous ARP / unsolicited NA settings; instances override
// the global ones.
type GARP struct {
	MasterDelay         Duration `json:"master_delay"`
	MasterRepeat        int      `json:"master_repeat"`
	MasterRefresh       Duration `json:"master_refresh"`
	MasterRefreshRepeat int      `json:"master_refresh_repeat"`
	LowerPrioDelay      Duration `json:"lower_prio_delay"`
	LowerPrioRepeat     int      `json:"lower_prio_repeat"`
	Interval            Duration `json:"interval"`
	GNAInterval         Duration `json:"gna_interval"`
	MinGARP             bool     `json:"min_garp"`
}

// FIFO is a notify FIFO with an optional script that reads it.
type FIFO struct {
	Path   string  `json:"path"`
	User   string  `json:"user,omitempty"`
	Group  string  `json:"group,omitempty"`
	Script *Script `json:"script,omitempty"`
}

// Script is a command configured for notify, tracking or checking. Argv is
// keepalived's shell-style split of the quoted command; Shell is set when the
// command needs /bin/sh (redirections, pipes, variables), in which case it
// runs as `sh -c Raw`.
type Script struct {
	Raw   string   `json:"cmd"`
	Argv  []string `json:"argv"`
	Shell bool     `json:"shell"`
	User  string   `json:"user,omitempty"`
	Group string   `json:"group,omitempty"`
	Pos   Pos      `json:"pos"`
}

// VRRPScript is a vrrp_script block.
type VRRPScript struct {
	Name     string   `json:"name"`
	Script   *Script  `json:"script"`
	Interval Duration `json:"interval"`
	Timeout  Duration `json:"timeout"`
	Weight   int      `json:"weight"`
	Reverse  bool     `json:"reverse"`
	Rise     int      `json:"rise"`
	Fall     int      `json:"fall"`
	InitFail bool     `json:"init_fail"`
	Pos      Pos      `json:"pos"`
}

// TrackFile is a track_file block: the number in File times Weight is added
// to the priority of instances that track it.
type TrackFile struct {
	Name    string `json:"name"`
	File    string `json:"file"`
	Weight  int    `json:"weight"`
	Reverse bool   `json:"reverse"`
	InitVal *int   `json:"init_file,omitempty"`
	Pos     Pos    `json:"pos"`
}

// TrackRef is one entry of track_script / track_interface / track_file.
// Weight is nil when the entry does not override the tracker's own.
type TrackRef struct {
	Name    string `json:"name"`
	Weight  *int   `json:"weight,omitempty"`
	Reverse bool   `json:"reverse,omitempty"`
	Pos     Pos    `json:"pos"`
}

// VIP is one virtual_ipaddress entry with its `ip addr` options.
type VIP struct {
	Prefix        netip.Prefix `json:"address"`
	Brd           string       `json:"brd,omitempty"`
	Dev           string       `json:"dev,omitempty"`
	Scope         string       `json:"scope,omitempty"`
	Label         string       `json:"label,omitempty"`
	Peer          netip.Prefix `json:"peer,omitzero"`
	NoDAD         bool         `json:"nodad,omitempty"`
	NoPrefixRoute bool         `json:"noprefixroute,omitempty"`
	Home          bool         `json:"home,omitempty"`
	AutoJoin      bool         `json:"autojoin,omitempty"`
	NoTrack       bool         `json:"no_track,omitempty"`
	PreferredLft  string       `json:"preferred_lft,omitempty"`
	UseVMAC       bool         `json:"use_vmac,omitempty"`
	Pos           Pos          `json:"pos"`
}

// Route is a virtual_routes / static_routes entry. halo keeps the words as
// `ip route` would take them and the fields it needs to check them.
type Route struct {
	Words   []string     `json:"route"`
	Dst     netip.Prefix `json:"dst"`
	Type    string       `json:"type,omitempty"`
	Dev     string       `json:"dev,omitempty"`
	Via     string       `json:"via,omitempty"`
	NoTrack bool         `json:"no_track,omitempty"`
	Pos     Pos          `json:"pos"`
}

// Rule is a virtual_rules / static_rules entry.
type Rule struct {
	Words []string     `json:"rule"`
	From  netip.Prefix `json:"from,omitzero"`
	To    netip.Prefix `json:"to,omitzero"`
	Table string       `json:"table,omitempty"`
	// Priority is the rule's preference (keepalived sets 16384, with a
	// warning, when the rule gives none).
	Priority int `json:"priority"`
	Pos      Pos `json:"pos"`
}

// Peer is a unicast_peer entry.
type Peer struct {
	Addr   netip.Addr `json:"address"`
	MinTTL int        `json:"min_ttl,omitempty"`
	MaxTTL int        `json:"max_ttl,omitempty"`
}

// VRRPInstance is a vrrp_instance block.
type VRRPInstance struct {
	Name                 string     `json:"name"`
	State                string     `json:"state"` // initial state: MASTER or BACKUP
	Interface            string     `json:"interface"`
	VRID                 int        `json:"virtual_router_id"`
	Priority             int        `json:"priority"`
	AdvertInt            Duration   `json:"advert_int"`
	Version              int        `json:"version"`
	Family               string     `json:"family"` // inet or inet6, from the VIPs
	AuthType             string     `json:"auth_type,omitempty"`
	AuthPass             Secret     `json:"auth_pass,omitempty"`
	VIPs                 []*VIP     `json:"virtual_ipaddress"`
	ExcludedVIPs         []*VIP     `json:"virtual_ipaddress_excluded,omitempty"`
	VirtualRoutes        []*Route   `json:"virtual_routes,omitempty"`
	VirtualRules         []*Rule    `json:"virtual_rules,omitempty"`
	UnicastSrcIP         netip.Addr `json:"unicast_src_ip,omitzero"`
	UnicastPeers         []Peer     `json:"unicast_peer,omitempty"`
	UnicastTTL           int        `json:"unicast_ttl,omitempty"`
	McastSrcIP           netip.Addr `json:"mcast_src_ip,omitzero"`
	McastDstIP           netip.Addr `json:"mcast_dst_ip,omitzero"`
	NoPreempt            bool       `json:"nopreempt"`
	PreemptDelay         Duration   `json:"preempt_delay"`
	TrackScripts         []TrackRef `json:"track_script,omitempty"`
	TrackInterfaces      []TrackRef `json:"track_interface,omitempty"`
	TrackFiles           []TrackRef `json:"track_file,omitempty"`
	NotifyMaster         *Script    `json:"notify_master,omitempty"`
	NotifyBackup         *Script    `json:"notify_backup,omitempty"`
	NotifyFault          *Script    `json:"notify_fault,omitempty"`
	NotifyStop           *Script    `json:"notify_stop,omitempty"`
	NotifyDeleted        *Script    `json:"notify_deleted,omitempty"`
	Notify               *Script    `json:"notify,omitempty"`
	NotifyRxLower        *Script    `json:"notify_master_rx_lower_pri,omitempty"`
	UseVMAC              bool       `json:"use_vmac"`
	VMACName             string     `json:"vmac_name,omitempty"`
	VMACXmitBase         bool       `json:"vmac_xmit_base,omitempty"`
	GARP                 GARP       `json:"garp"`
	Accept               bool       `json:"accept"`
	StrictMode           bool       `json:"strict_mode"`
	DontTrackPrimary     bool       `json:"dont_track_primary,omitempty"`
	SkipCheckAdvAddr     bool       `json:"skip_check_adv_addr"`
	CheckUnicastSrc      bool       `json:"check_unicast_src"`
	LowerPrioNoAdvert    bool       `json:"lower_prio_no_advert"`
	HigherPrioSendAdvert bool       `json:"higher_prio_send_advert"`
	V3ChecksumAsV2       bool       `json:"v3_checksum_as_v2"`
	SMTPAlert            bool       `json:"smtp_alert,omitempty"`
	Pos                  Pos        `json:"pos"`
}

// SyncGroup is a vrrp_sync_group block.
type SyncGroup struct {
	Name            string     `json:"name"`
	Members         []string   `json:"group"`
	NotifyMaster    *Script    `json:"notify_master,omitempty"`
	NotifyBackup    *Script    `json:"notify_backup,omitempty"`
	NotifyFault     *Script    `json:"notify_fault,omitempty"`
	NotifyStop      *Script    `json:"notify_stop,omitempty"`
	Notify          *Script    `json:"notify,omitempty"`
	TrackScripts    []TrackRef `json:"track_script,omitempty"`
	TrackInterfaces []TrackRef `json:"track_interface,omitempty"`
	TrackFiles      []TrackRef `json:"track_file,omitempty"`
	TrackingWeight  bool       `json:"sync_group_tracking_weight"`
	SMTPAlert       bool       `json:"smtp_alert,omitempty"`
	Pos             Pos        `json:"pos"`
}

// VSGroupEntry is one line of a virtual_server_group: an address range and
// port, or a firewall mark.
type VSGroupEntry struct {
	First  netip.Addr `json:"first,omitzero"`
	Last   netip.Addr `json:"last,omitzero"`
	Port   int        `json:"port,omitempty"`
	FWMark uint32     `json:"fwmark,omitempty"`
	Family string     `json:"family,omitempty"`
	Pos    Pos        `json:"pos"`
}

// VSGroup is a virtual_server_group block.
type VSGroup struct {
	Name    string         `json:"name"`
	Entries []VSGroupEntry `json:"entries"`
	Pos     Pos            `json:"pos"`
}

// CheckerDefaults are the options a virtual_server passes to its
// real_servers and they to their checkers.
type CheckerDefaults struct {
	DelayLoop        Duration  `json:"delay_loop"`
	ConnectTimeout   Duration  `json:"connect_timeout"`
	Retry            int       `json:"retry"`
	DelayBeforeRetry Duration  `json:"delay_before_retry"`
	Warmup           *Duration `json:"warmup,omitempty"`
	Alpha            bool      `json:"alpha"`
	VirtualHost      string    `json:"virtualhost,omitempty"`
	LogAllFailures   bool      `json:"log_all_failures,omitempty"`

	retrySet, dbrSet, ctSet, dlSet bool
}

// VirtualServer is a virtual_server block.
type VirtualServer struct {
	Addr       netip.Addr `json:"address,omitzero"`
	Port       int        `json:"port"`
	FWMark     uint32     `json:"fwmark,omitempty"`
	Group      string     `json:"group,omitempty"`
	Protocol   string     `json:"protocol"`
	IPFamily   string     `json:"ip_family,omitempty"`
	Scheduler  string     `json:"lvs_sched"`
	SchedFlags []string   `json:"sched_flags,omitempty"`
	OPS        bool       `json:"ops,omitempty"`
	Method     string     `json:"lvs_method"`
	Tunnel
	PersistenceTimeout     Duration        `json:"persistence_timeout"`
	PersistenceGranularity string          `json:"persistence_granularity,omitempty"`
	Quorum                 int             `json:"quorum"`
	Hysteresis             int             `json:"hysteresis"`
	QuorumUp               *Script         `json:"quorum_up,omitempty"`
	QuorumDown             *Script         `json:"quorum_down,omitempty"`
	SorryServer            *RealServer     `json:"sorry_server,omitempty"`
	Inhibit                bool            `json:"inhibit_on_failure"`
	Omega                  bool            `json:"omega"`
	HASuspend              bool            `json:"ha_suspend"`
	Defaults               CheckerDefaults `json:"checker_defaults"`
	Reals                  []*RealServer   `json:"real_servers"`
	Pos                    Pos             `json:"pos"`
}

// Tunnel is the encapsulation of `lvs_method TUN [type ipip|gue port N|gre]
// [nocsum|csum|remcsum]`, on a virtual, real or sorry server.
type Tunnel struct {
	TunType     string `json:"tun_type,omitempty"`     // ipip (the default with TUN) | gue | gre
	TunPort     int    `json:"tun_port,omitempty"`     // gue only, and required there
	TunChecksum string `json:"tun_checksum,omitempty"` // nocsum | csum | remcsum (gue only)
}

// RealServer is a real_server block (also used for the sorry server).
type RealServer struct {
	Addr       netip.Addr      `json:"address"`
	Port       int             `json:"port"`
	Weight     int             `json:"weight"`
	Method     string          `json:"lvs_method,omitempty"` // empty: the virtual server's
	Tunnel                     // with Method TUN
	Inhibit    bool            `json:"inhibit_on_failure"`
	NotifyUp   *Script         `json:"notify_up,omitempty"`
	NotifyDown *Script         `json:"notify_down,omitempty"`
	UThreshold int             `json:"uthreshold,omitempty"`
	LThreshold int             `json:"lthreshold,omitempty"`
	Defaults   CheckerDefaults `json:"checker_defaults"`
	Checkers   []*Checker      `json:"checkers,omitempty"`
	Pos        Pos             `json:"pos"`
}

// StatusRange is an inclusive HTTP status code range.
type StatusRange struct {
	From int `json:"from"`
	To   int `json:"to"`
}

// URL is one url block of HTTP_GET / SSL_GET.
type URL struct {
	Path        string        `json:"path"`
	Digest      string        `json:"digest,omitempty"`
	StatusCodes []StatusRange `json:"status_code"`
	VirtualHost string        `json:"virtualhost,omitempty"`
	// Regex must match the body (RE2 syntax, regex_options applied as
	// flags); RegexNoMatch inverts it. The offsets bound where the match
	// may start (RegexMaxOffset nil: anywhere).
	Regex          string `json:"regex,omitempty"`
	RegexNoMatch   bool   `json:"regex_no_match,omitempty"`
	RegexMinOffset int    `json:"regex_min_offset,omitempty"`
	RegexMaxOffset *int   `json:"regex_max_offset,omitempty"`
	Pos            Pos    `json:"pos"`
}

// Checker is one health checker of a real server, with inherited options
// resolved.
type Checker struct {
	Type             string     `json:"type"` // TCP_CHECK, HTTP_GET, SSL_GET, MISC_CHECK, PING_CHECK, UDP_CHECK, DNS_CHECK, SMTP_CHECK
	ConnectIP        netip.Addr `json:"connect_ip,omitzero"`
	ConnectPort      int        `json:"connect_port,omitempty"`
	BindTo           netip.Addr `json:"bindto,omitzero"`
	BindIf           string     `json:"bind_if,omitempty"`
	BindPort         int        `json:"bind_port,omitempty"`
	FWMark           uint32     `json:"fwmark,omitempty"`
	ConnectTimeout   Duration   `json:"connect_timeout"`
	Retry            int        `json:"retry"`
	DelayBeforeRetry Duration   `json:"delay_before_retry"`
	DelayLoop        Duration   `json:"delay_loop"`
	Warmup           Duration   `json:"warmup"`
	Alpha            bool       `json:"alpha"`
	LogAllFailures   bool       `json:"log_all_failures,omitempty"`

	// HTTP_GET / SSL_GET
	URLs         []*URL `json:"url,omitempty"`
	HTTPProtocol string `json:"http_protocol,omitempty"`
	VirtualHost  string `json:"virtualhost,omitempty"`
	EnableSNI    bool   `json:"enable_sni,omitempty"`
	SNIName      string `json:"sni_name,omitempty"`
	FastRecovery bool   `json:"fast_recovery,omitempty"`

	// MISC_CHECK
	MiscPath    *Script  `json:"misc_path,omitempty"`
	MiscTimeout Duration `json:"misc_timeout,omitempty"`
	MiscDynamic bool     `json:"misc_dynamic,omitempty"`

	// UDP_CHECK
	Payload        []byte `json:"payload,omitempty"`
	RequireReply   bool   `json:"require_reply,omitempty"`
	ReplyPattern   string `json:"reply_pattern,omitempty"` // hex with X wildcards
	MinReplyLength int    `json:"min_reply_length,omitempty"`
	MaxReplyLength int    `json:"max_reply_length,omitempty"`

	// DNS_CHECK
	DNSType string `json:"dns_type,omitempty"`
	DNSName string `json:"dns_name,omitempty"`

	// SMTP_CHECK
	HeloName string `json:"helo_name,omitempty"`

	Pos Pos `json:"pos"`

	retrySet, dbrSet, ctSet, dlSet, warmupSet bool
}

// Dataplane is halo's extension block. The sizes and timeouts are what the
// XDP backend builds its maps with; IPVS has its own (ipvsadm --set).
type Dataplane struct {
	Backend    string   `json:"backend"` // xdp | ipvs | none
	Interfaces []string `json:"interface,omitempty"`
	XDPMode    string   `json:"xdp_mode"` // native | generic | auto

	// FlowTableSize is the number of entries of the connection (flow)
	// table. Default 262144.
	FlowTableSize int `json:"flow_table_size"`
	// Idle timeouts of flow-table entries, as IPVS's defaults: established
	// TCP 900 s, TCP after FIN/RST 120 s, UDP 300 s. Whole seconds.
	TCPTimeout    Duration `json:"tcp_timeout"`
	TCPFinTimeout Duration `json:"tcp_fin_timeout"`
	UDPTimeout    Duration `json:"udp_timeout"`
	// SYNFloodThreshold is the rate of new flows per second per CPU above
	// which new flow-table entries stop being written (lookups go on);
	// 0 = chosen by the data plane.
	SYNFloodThreshold int `json:"syn_flood_threshold"`
	// FlowTracking is when the XDP data plane records flows: on_change
	// (default: only on table slots whose real changed, until their flows
	// settle) or always (every flow, the table read on every packet).
	FlowTracking string `json:"flow_tracking"`
	// SelectionHash is the XDP selection hash: murmur3 (default) or mix32
	// (halo before murmur3; for a pair running both versions during an
	// upgrade: every director of a pair must hash alike).
	SelectionHash string `json:"selection_hash"`
	// MaxServices and MaxReals size the service and real tables
	// (defaults 1024 services and 131072 (service, real) pairs); the
	// config must fit in them.
	MaxServices int `json:"max_services"`
	MaxReals    int `json:"max_reals"`

	Pos Pos `json:"pos,omitzero"`
}
