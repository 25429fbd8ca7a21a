package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gbgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// Reconnect timers. GoBGP's defaults (120 s connect retry, 30 s idle hold
// after a reset) suit an Internet edge; a director behind its own routers
// wants its routes back seconds after a router restarts.
const (
	connectRetry   = 5
	idleHoldAfter  = 3
	flushTimeout   = 2 * time.Second
	restartingWait = 5 * time.Second
	gobgpLogPrefix = "bgp"
)

// Speaker owns the embedded GoBGP server: one session per neighbor, and the
// set of prefixes it announces, which it only ever moves towards Desired.
type Speaker struct {
	cfg Config
	log *slog.Logger
	srv *server.BgpServer

	mu         sync.Mutex // serialises reconcile; guards the fields below
	vss        []VirtualServer
	vips       []VIP
	drained    bool
	stopping   bool
	started    bool
	peersAdded bool
	announced  map[netip.Prefix]bool
	known      map[netip.Prefix]bool // every prefix ever desired, for the 0-valued metric

	stat statusState
}

// New checks cfg and returns a speaker that is not running yet. The router
// id defaults to the host's first IPv4 address.
func New(cfg Config, log *slog.Logger) (*Speaker, error) {
	if log == nil {
		log = slog.Default()
	}
	if cfg.ListenPort == 0 {
		cfg.ListenPort = -1
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if !cfg.RouterID.IsValid() {
		id, err := FirstIPv4()
		if err != nil {
			return nil, err
		}
		cfg.RouterID = id
	}
	var secrets []string
	for _, n := range cfg.Neighbors {
		if n.Password != "" {
			secrets = append(secrets, n.Password)
		}
	}
	log = slog.New(&redactHandler{h: log.Handler(), secrets: secrets})
	return &Speaker{cfg: cfg, log: log, announced: map[netip.Prefix]bool{}, known: map[netip.Prefix]bool{},
		stat: statusState{base: map[string]uint64{}, last: map[string]uint64{}}}, nil
}

// Start runs the BGP server and adds every neighbor. Nothing is announced
// until the first Update.
func (s *Speaker) Start(ctx context.Context) error {
	// GoBGP is chatty at info (every peer config, every FSM step); session
	// changes are logged here, so only its warnings and errors pass.
	lvl := &slog.LevelVar{}
	lvl.Set(slog.LevelWarn)
	gl := slog.New(&minLevel{h: s.log.Handler(), min: lvl}).With("component", gobgpLogPrefix)
	s.srv = server.NewBgpServer(server.LoggerOption(gl, lvl))
	go s.srv.Serve()
	g := &api.Global{Asn: s.cfg.LocalAS, RouterId: s.cfg.RouterID.String(), ListenPort: int32(s.cfg.ListenPort)}
	if err := s.srv.StartBgp(ctx, &api.StartBgpRequest{Global: g}); err != nil {
		s.srv.Stop()
		return fmt.Errorf("bgp: start: %w", err)
	}
	if err := s.srv.WatchEvent(context.Background(), server.WatchEventMessageCallbacks{
		OnPeerUpdate: s.onPeer}, server.WatchPeer()); err != nil {
		s.srv.Stop()
		return fmt.Errorf("bgp: watch: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.started = true
	// A restarting speaker opens its sessions only once it knows what to
	// announce (the first Update): GoBGP sends End-of-RIB right after the
	// OPEN exchange, and a router that helps with the restart drops every
	// route it kept that the RIB before that marker did not repeat.
	if !s.cfg.Restarting {
		if err := s.addPeers(ctx); err != nil {
			s.srv.Stop()
			s.started = false
			return err
		}
	} else {
		// A daemon with nothing to report never calls Update: open the
		// sessions anyway, after a while.
		time.AfterFunc(restartingWait, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.started {
				if err := s.addPeers(context.Background()); err != nil {
					s.log.Warn("bgp", "err", err)
				}
			}
		})
	}
	s.log.Info("bgp speaker started", "local_as", s.cfg.LocalAS, "router_id", s.cfg.RouterID,
		"neighbors", len(s.cfg.Neighbors), "restarting", s.cfg.Restarting)
	return nil
}

// addPeers adds every neighbor once; s.mu is held.
func (s *Speaker) addPeers(ctx context.Context) error {
	if s.peersAdded {
		return nil
	}
	for _, n := range s.cfg.Neighbors {
		if err := s.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: s.peer(n)}); err != nil {
			return fmt.Errorf("bgp: neighbor %s: %w", n.Addr, err)
		}
	}
	s.peersAdded = true
	return nil
}

func (s *Speaker) peer(n Neighbor) *api.Peer {
	hold := uint64(n.HoldTime)
	fam := &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	if n.Addr.Is6() && !n.Addr.Is4In6() {
		// One family per session, the neighbor's own: a route's next hop
		// is this end of the session, which must be of the route's family
		// (no RFC 8950 extended next hop).
		fam = &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
	}
	p := &api.Peer{
		Conf: &api.PeerConf{NeighborAddress: n.Addr.String(), PeerAsn: n.RemoteAS, LocalAsn: s.cfg.LocalAS,
			AuthPassword: n.Password},
		Timers: &api.Timers{Config: &api.TimersConfig{HoldTime: hold, KeepaliveInterval: hold / 3,
			ConnectRetry: connectRetry, IdleHoldTimeAfterReset: idleHoldAfter}},
		// Graceful restart (RFC 4724) as restarting speaker and helper; the
		// restart time GoBGP derives is the hold time, so a director that
		// dies is gone from the routers within about one hold time.
		GracefulRestart: &api.GracefulRestart{Enabled: true, LocalRestarting: s.cfg.Restarting},
		AfiSafis: []*api.AfiSafi{{Config: &api.AfiSafiConfig{Family: fam, Enabled: true},
			MpGracefulRestart: &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}}},
		Transport: &api.Transport{},
	}
	if n.LocalAddress.IsValid() {
		p.Transport.LocalAddress = n.LocalAddress.String()
	}
	if n.Port != 0 {
		p.Transport.RemotePort = uint32(n.Port)
	}
	if n.MultihopTTL > 0 {
		p.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: uint32(n.MultihopTTL)}
	}
	return p
}

// Update is the announcer seam: the daemon calls it with every virtual
// server's quorum and every VRRP VIP's state whenever one changes (calling
// it with the same state again is cheap and changes nothing).
func (s *Speaker) Update(vss []VirtualServer, vips []VIP) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.vss = append([]VirtualServer(nil), vss...)
	s.vips = append([]VIP(nil), vips...)
	return s.reconcile()
}

// Drain withdraws every route (on) or announces again what the state says
// (off). A drained director keeps forwarding the flows it still receives.
func (s *Speaker) Drain(on bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.drained != on {
		s.log.Info("bgp drain", "drained", on)
	}
	s.drained = on
	return s.reconcile()
}

// Drained reports whether Drain(true) is in effect.
func (s *Speaker) Drained() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.drained
}

// reconcile moves the announced set to Desired; s.mu is held.
func (s *Speaker) reconcile() error {
	if !s.started {
		return nil
	}
	want := Desired(State{VirtualServers: s.vss, VIPs: s.vips, Announce: s.cfg.Announce, Drained: s.drained || s.stopping})
	have := make([]netip.Prefix, 0, len(s.announced))
	for p := range s.announced {
		have = append(have, p)
	}
	add, del := Diff(have, want)
	var errs []error
	for _, p := range del {
		if err := s.srv.DeletePath(apiutil.DeletePathRequest{Paths: []*apiutil.Path{s.path(p, true)}}); err != nil {
			errs = append(errs, fmt.Errorf("bgp: withdraw %s: %w", p, err))
			continue
		}
		delete(s.announced, p)
		s.log.Info("bgp withdraw", "prefix", p)
	}
	for _, p := range add {
		s.known[p] = true
		if _, err := s.srv.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{s.path(p, false)}}); err != nil {
			errs = append(errs, fmt.Errorf("bgp: announce %s: %w", p, err))
			continue
		}
		s.announced[p] = true
		s.log.Info("bgp announce", "prefix", p)
	}
	// After the paths: a restarting speaker's first RIB must be complete.
	if err := s.addPeers(context.Background()); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// path builds the route for p. The next hop is left unspecified: GoBGP then
// puts this end of each session in its place, which is next-hop-self for
// both eBGP and iBGP.
func (s *Speaker) path(p netip.Prefix, withdraw bool) *apiutil.Path {
	nlri, _ := gbgp.NewIPAddrPrefix(p)
	fam := gbgp.RF_IPv4_UC
	var nh gbgp.PathAttributeInterface
	if p.Addr().Is4() {
		nh, _ = gbgp.NewPathAttributeNextHop(netip.IPv4Unspecified())
	} else {
		fam = gbgp.RF_IPv6_UC
		nh, _ = gbgp.NewPathAttributeMpReachNLRI(fam, []gbgp.PathNLRI{{NLRI: nlri}}, netip.IPv6Unspecified())
	}
	return &apiutil.Path{Family: fam, Nlri: nlri, Withdrawal: withdraw,
		Attrs: []gbgp.PathAttributeInterface{gbgp.NewPathAttributeOrigin(gbgp.BGP_ORIGIN_ATTR_TYPE_IGP), nh}}
}

// WithdrawAll withdraws every route for good (a clean stop, before the
// data plane goes) and waits, bounded, until the withdrawals are on the
// wire. The sessions stay up until Stop.
func (s *Speaker) WithdrawAll(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		return nil
	}
	s.stopping = true
	sent := s.updatesSent()
	err := s.reconcile()
	s.waitFlushed(ctx, sent)
	return err
}

// Stop ends the speaker. With withdraw (a clean stop) it first calls
// WithdrawAll, then closes the sessions with a Cease. Without it, and
// without an earlier WithdrawAll (the data plane is kept for an upgrade),
// the sessions close without a notification, so routers that negotiated
// graceful restart keep the routes while halod restarts.
func (s *Speaker) Stop(ctx context.Context, withdraw bool) {
	if withdraw {
		if err := s.WithdrawAll(ctx); err != nil {
			s.log.Warn("bgp stop", "err", err)
		}
	}
	s.mu.Lock()
	if !s.started {
		s.mu.Unlock()
		return
	}
	s.started = false
	graceful := !s.stopping
	s.mu.Unlock()
	// Not srv.Stop: it calls StopBgp again (logging an error) and would
	// send the Cease that graceful restart must not see.
	if err := s.srv.StopBgp(ctx, &api.StopBgpRequest{AllowGracefulRestart: graceful}); err != nil {
		s.log.Warn("bgp stop", "err", err)
	}
	s.log.Info("bgp speaker stopped", "routes_kept_for_graceful_restart", graceful)
}

// waitFlushed waits until every established session has sent an UPDATE
// since before, or flushTimeout passes.
func (s *Speaker) waitFlushed(ctx context.Context, before map[string]uint64) {
	deadline := time.Now().Add(flushTimeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		done := true
		for addr, n := range s.updatesSent() {
			if b, ok := before[addr]; ok && n <= b {
				done = false
			}
		}
		if done {
			// The update is handed to the socket; give the kernel a moment
			// to put it on the wire before the Cease follows.
			time.Sleep(50 * time.Millisecond)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// updatesSent maps each established peer to its UPDATE counter.
func (s *Speaker) updatesSent() map[string]uint64 {
	out := map[string]uint64{}
	_ = s.srv.ListPeer(context.Background(), &api.ListPeerRequest{EnableAdvertised: false}, func(p *api.Peer) {
		if p.State != nil && p.State.SessionState == api.PeerState_SESSION_STATE_ESTABLISHED && p.State.Messages != nil &&
			p.State.Messages.Sent != nil {
			out[p.State.NeighborAddress] = p.State.Messages.Sent.Update
		}
	})
	return out
}

func (s *Speaker) onPeer(ev *apiutil.WatchEventMessage_PeerEvent, _ time.Time) {
	if ev.Type != apiutil.PEER_EVENT_STATE {
		return
	}
	st := ev.Peer.State
	s.log.Info("bgp session", "peer", st.NeighborAddress, "state", st.SessionState.String(),
		"remote_as", st.PeerASN)
}
