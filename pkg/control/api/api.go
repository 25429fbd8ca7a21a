// Package api holds the wire types of halod's control socket (HTTP/JSON
// over a Unix socket). haloctl, tests and other clients import only this
// package and pkg/control's client, never the daemon.
//
// Endpoints:
//
//	GET  /v1/status  Status
//	GET  /v1/dump    Dump
//	POST /v1/reload  ReloadResult (HTTP 200 whether or not the config loaded)
//	POST /v1/drain   DrainRequest -> Error or 204
//	POST /v1/bgp/drain  BGPDrainRequest -> Error or 204
package api

import "time"

// Status is the daemon's state as `haloctl status` shows it.
type Status struct {
	Version        string          `json:"version"`
	PID            int             `json:"pid"`
	Ready          bool            `json:"ready"`
	StartedAt      time.Time       `json:"started_at"`
	Dataplane      string          `json:"dataplane"`
	Config         ConfigStatus    `json:"config"`
	VRRP           []Instance      `json:"vrrp"`
	VirtualServers []VirtualServer `json:"virtual_servers"`
	BGP            *BGP            `json:"bgp,omitempty"` // nil without a bgp block
	// Skipped are the services the data plane left out at its latest
	// apply (every other one is applied), with the reason.
	Skipped []SkippedService `json:"dataplane_skipped,omitempty"`
}

// SkippedService is a service the data plane could not install.
type SkippedService struct {
	Service string `json:"service"` // data-plane key: tcp:10.0.0.1:80, fwmark:7
	Reason  string `json:"reason"`
}

// BGP is the embedded BGP speaker (pkg/bgp): sessions and what is
// announced. Passwords never appear here.
type BGP struct {
	LocalAS     uint32    `json:"local_as"`
	RouterID    string    `json:"router_id"`
	Drained     bool      `json:"drained,omitempty"`
	Peers       []BGPPeer `json:"peers"`
	Announced   []string  `json:"announced"`
	UpdatesSent uint64    `json:"updates_sent_total"`
}

// BGPPeer is one BGP session.
type BGPPeer struct {
	Address     string    `json:"address"`
	RemoteAS    uint32    `json:"remote_as"`
	State       string    `json:"state"`
	Up          bool      `json:"up"`
	Since       time.Time `json:"since,omitzero"`
	HoldTime    uint64    `json:"hold_time"`
	UpdatesSent uint64    `json:"updates_sent"`
	MD5         bool      `json:"md5,omitempty"`
}

// BGPDrainRequest is POST /v1/bgp/drain: withdraw every route (Drain true)
// for maintenance, or announce again. Forwarding goes on either way.
type BGPDrainRequest struct {
	Drain bool `json:"drain"`
}

// ConfigStatus is the running config and the reload history.
type ConfigStatus struct {
	File                 string    `json:"file"`
	LoadedAt             time.Time `json:"loaded_at"`
	Reloads              int       `json:"reloads"`
	FailedReloads        int       `json:"failed_reloads"`
	LastReloadSuccessful bool      `json:"last_reload_successful"`
	LastReloadError      string    `json:"last_reload_error,omitempty"`
}

// Instance is one VRRP instance. Fields beyond the basics (adverts,
// timers, trackers) are filled when the VRRP daemon reports them; the
// daemon copies its status by JSON field name.
type Instance struct {
	Name              string         `json:"name"`
	VRID              int            `json:"vrid"`
	Interface         string         `json:"interface"`
	State             string         `json:"state"`
	Priority          int            `json:"priority"`
	EffectivePriority int            `json:"effective_priority"`
	VIPs              []string       `json:"vips"`
	MasterAddr        string         `json:"master,omitempty"`
	Drops             map[string]int `json:"drops,omitempty"`
	Transitions       int            `json:"transitions"`
	AdvertsSent       uint64         `json:"adverts_sent"`
	AdvertsReceived   uint64         `json:"adverts_received"`
	GratuitousSent    uint64         `json:"gratuitous_sent"`
	AdvertInterval    string         `json:"advert_interval,omitempty"`
	Trackers          []Tracker      `json:"trackers,omitempty"`
}

// Tracker is a vrrp_script, tracked interface or track_file as it stands.
type Tracker struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"` // script, interface, file
	Up     bool   `json:"up"`
	Weight int    `json:"weight"`
}

// VirtualServer is one virtual_server.
type VirtualServer struct {
	ID         string  `json:"id"` // ADDR:PORT/proto, fwmark:N or group:NAME
	Address    string  `json:"address"`
	Port       int     `json:"port"`
	Protocol   string  `json:"protocol"`
	Scheduler  string  `json:"scheduler"`
	Method     string  `json:"method"`
	Quorum     int     `json:"quorum"`
	LiveWeight int     `json:"live_weight"`
	QuorumUp   bool    `json:"quorum_up"`
	Suspended  bool    `json:"suspended,omitempty"`
	Reals      []Real  `json:"reals"`
	Sorry      *Real   `json:"sorry_server,omitempty"`
	Counters   *Counts `json:"counters,omitempty"`
}

// Real is one real server.
type Real struct {
	Address          string    `json:"address"`
	Port             int       `json:"port"`
	Weight           int       `json:"weight"`
	ConfiguredWeight int       `json:"configured_weight"`
	Up               bool      `json:"up"`
	Drained          bool      `json:"drained,omitempty"`
	LastError        string    `json:"last_error"`
	Checkers         []Checker `json:"checkers,omitempty"`
	Counters         *Counts   `json:"counters,omitempty"`
	// DataplaneState says why the data plane cannot send new flows to
	// the real now (the XDP backend: "MAC not resolved"); empty when it
	// can or the backend does not tell.
	DataplaneState string `json:"dataplane_state,omitempty"`
	// FlowEntries (dump, XDP) counts the connection-table entries leading
	// to the real's address, over every virtual server it serves: the XDP
	// data plane counts no new connections per real (counters.connections
	// stays 0), only the flows it holds.
	FlowEntries *int `json:"flow_entries,omitempty"`
}

// Checker is one health checker with its last attempt.
type Checker struct {
	Type           string    `json:"type"`
	Up             bool      `json:"up"`
	LastError      string    `json:"last_error,omitempty"`
	Attempts       uint64    `json:"attempts"`
	LatencySeconds float64   `json:"latency_seconds"`
	LastCheck      time.Time `json:"last_check,omitzero"`
}

// Counts are data-plane counters.
type Counts struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
	Conns   uint64 `json:"connections"`
}

// Dump is the full state (`haloctl dump`, SIGUSR1): the status with every
// checker and counter, plus what the data plane has installed.
type Dump struct {
	Status
	DataplaneServices []Service         `json:"dataplane_services"`
	DataplaneVerdicts map[string]uint64 `json:"dataplane_verdicts,omitempty"`
	FlowTableEntries  *int              `json:"flow_table_entries,omitempty"`
}

// Service is one installed data-plane service.
type Service struct {
	Key       string        `json:"key"`
	Scheduler string        `json:"scheduler"`
	Method    string        `json:"method"`
	Reals     []ServiceReal `json:"reals"`
	Counters  Counts        `json:"counters"`
}

// ServiceReal is one installed real of a service.
type ServiceReal struct {
	Key      string `json:"key"`
	Weight   uint32 `json:"weight"`
	Counters Counts `json:"counters"`
}

// ReloadResult answers POST /v1/reload.
type ReloadResult struct {
	OK          bool     `json:"ok"`
	Error       string   `json:"error,omitempty"`
	Diagnostics []string `json:"diagnostics,omitempty"`
	Summary     string   `json:"summary,omitempty"`
}

// DrainRequest is POST /v1/drain: take a real out of new-flow selection
// (Drain true, weight 0) or put it back at its configured weight.
type DrainRequest struct {
	VirtualServer string `json:"virtual_server"` // ADDR:PORT, fwmark:N or group:NAME
	Protocol      string `json:"protocol,omitempty"`
	Real          string `json:"real_server"` // ADDR:PORT
	Drain         bool   `json:"drain"`
}

// Error is the body of a failed request.
type Error struct {
	Error string `json:"error"`
}
