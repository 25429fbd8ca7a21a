// Package config reads keepalived.conf as keepalived 2.2.7 does
// (keepalived-semantics.md §10) into a typed model with keepalived's
// defaults, plus halo's `dataplane { }` extension block.
//
// Parsing never stops at the first problem: every diagnostic is collected
// with its file, line and column, and the caller decides, by severity,
// whether the config may be used. A config with errors is never half-used:
// Load returns it only for inspection (halod -d) and halod keeps running the
// previous one.
package config

import (
	"math/rand/v2"
	"net/netip"
	"os"
	"path"
	"sort"
	"strings"
)

// Options control Load.
type Options struct {
	// ConfigID selects @id / @^id lines; default: the short host name.
	ConfigID string
	// FS reads files; default: the operating system.
	FS FS
	// InterfaceExists, when set, is asked about every interface the config
	// names; missing ones are errors (as keepalived's "non-existent
	// interface"). Nil skips the check (parsing on another host).
	InterfaceExists func(name string) bool
	// Scripts, when set, checks script security (keepalived's
	// enable_script_security rules) against the real file system.
	Scripts *ScriptChecker
	// Seed makes ${_RANDOM} reproducible in tests; 0 seeds from entropy.
	Seed uint64

	budget int // expansion budget; tests lower it to keep fuzzing fast
}

// Load reads and checks a config file and everything it includes. The
// returned config is nil only when nothing could be read (a Fatal
// diagnostic). Use Diags.Err to decide whether the config may be run.
func Load(path string, opts Options) (*Config, *Diags) {
	d := &Diags{}
	if opts.FS == nil {
		opts.FS = osFS{}
	}
	if opts.ConfigID == "" {
		opts.ConfigID = shortHostname()
	}
	seed := opts.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	lx := &lexer{configID: opts.ConfigID, fs: opts.FS, diags: d, defs: map[string][]string{},
		rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), budget: opts.budget}
	if lx.budget == 0 {
		lx.budget = maxWork
	}
	lx.readFile(path, Pos{File: path})
	if d.Has(Fatal) {
		d.sort()
		return nil, d
	}
	tree := buildTree(lx.out, d)
	cfg := &Config{Files: lx.files}
	b := &builder{d: d, cfg: cfg}
	b.build(tree)
	fillDefaults(cfg)
	validate(cfg, d, opts)
	if opts.Scripts != nil {
		opts.Scripts.checkConfig(cfg, d)
	}
	d.sort()
	return cfg, d
}

// Err returns the diagnostics that forbid running the config: errors,
// security violations and fatal ones, and warnings too when strict.
func (d *Diags) Err(strict bool) error {
	var bad []Diag
	for _, x := range d.List {
		if x.Severity >= Error || (strict && x.Severity == Warning) {
			bad = append(bad, x)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return &LoadError{Diags: bad}
}

func shortHostname() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	short, _, _ := strings.Cut(h, ".")
	return short
}

// fillDefaults applies keepalived's global defaults and hands global values
// down to instances that did not set their own.
func fillDefaults(c *Config) {
	g := &c.Global
	if g.RouterID == "" {
		g.RouterID = shortHostname()
	}
	if !g.VRRPMcastGroup4.IsValid() {
		g.VRRPMcastGroup4 = netip.MustParseAddr("224.0.0.18")
	}
	if !g.VRRPMcastGroup6.IsValid() {
		g.VRRPMcastGroup6 = netip.MustParseAddr("ff02::12")
	}
	if g.VRRPVersion == 0 {
		g.VRRPVersion = 2
	}
	if g.SMTPConnectTimeout == 0 {
		g.SMTPConnectTimeout = secs(30)
	}
	if g.DownTimerAdverts == 0 {
		g.DownTimerAdverts = 3
	}
	gp := &g.GARP
	if gp.MasterDelay == 0 {
		gp.MasterDelay = secs(5)
	}
	if gp.MasterRepeat == 0 {
		gp.MasterRepeat = 5
	}
	if gp.MasterRefreshRepeat == 0 {
		gp.MasterRefreshRepeat = 1
	}
	if gp.LowerPrioDelay == 0 {
		gp.LowerPrioDelay = gp.MasterDelay
	}
	if gp.LowerPrioRepeat == 0 {
		gp.LowerPrioRepeat = gp.MasterRepeat
	}
	for _, in := range c.Instances {
		ip := &in.GARP
		if ip.MasterDelay == 0 {
			ip.MasterDelay = gp.MasterDelay
		}
		if ip.MasterRepeat == 0 {
			ip.MasterRepeat = gp.MasterRepeat
		}
		if ip.MasterRefresh == 0 {
			ip.MasterRefresh = gp.MasterRefresh
		}
		if ip.MasterRefreshRepeat == 0 {
			ip.MasterRefreshRepeat = gp.MasterRefreshRepeat
		}
		if ip.LowerPrioDelay == 0 {
			ip.LowerPrioDelay = gp.LowerPrioDelay
		}
		if ip.LowerPrioRepeat == 0 {
			ip.LowerPrioRepeat = gp.LowerPrioRepeat
		}
		if ip.Interval == 0 {
			ip.Interval = gp.Interval
		}
		if ip.GNAInterval == 0 {
			ip.GNAInterval = gp.GNAInterval
		}
		ip.MinGARP = ip.MinGARP || gp.MinGARP
		in.SkipCheckAdvAddr = in.SkipCheckAdvAddr || g.SkipCheckAdvAddr
		in.CheckUnicastSrc = in.CheckUnicastSrc || g.CheckUnicastSrc
		in.LowerPrioNoAdvert = in.LowerPrioNoAdvert || g.LowerPrioNoAdvert
		in.HigherPrioSendAdvert = in.HigherPrioSendAdvert || g.HigherPrioSendAdvert
		in.V3ChecksumAsV2 = in.V3ChecksumAsV2 || g.V3ChecksumAsV2
		in.StrictMode = in.StrictMode || g.VRRPStrict
		if in.Version == 0 {
			in.Version = g.VRRPVersion
			if in.Family == "inet6" {
				in.Version = 3
			}
		}
		if in.StrictMode {
			in.LowerPrioNoAdvert = true
		}
	}
	dp := &c.Dataplane
	if dp.Backend == "" {
		// Without halo's block, a keepalived.conf means IPVS, as it always
		// has; `halod --dataplane` overrides.
		dp.Backend = "ipvs"
	}
	if dp.XDPMode == "" {
		dp.XDPMode = "auto"
	}
}

// MapFS is an in-memory FS (path → contents) for parsing configs that are
// not on disk: tests, and configs handed over by other programs.
type MapFS map[string]string

// ReadFile implements FS.
func (m MapFS) ReadFile(name string) ([]byte, error) {
	s, ok := m[name]
	if !ok {
		return nil, &os.PathError{Op: "open", Path: name, Err: os.ErrNotExist}
	}
	return []byte(s), nil
}

// Glob implements FS with path.Match semantics.
func (m MapFS) Glob(pattern string) ([]string, error) {
	var out []string
	for k := range m {
		if ok, err := path.Match(pattern, k); err != nil {
			return nil, err
		} else if ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out, nil
}
