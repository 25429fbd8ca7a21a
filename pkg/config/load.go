// Package config reads keepalived.conf as keepalived 2.2.7 does
// (docs/keepalived.md#config-grammar) into a typed model with keepalived's
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
	// Backend, when set, replaces the dataplane block's backend before the
	// config is validated (halod --dataplane), so what that backend cannot
	// run is refused at load as if the config had named it.
	Backend string
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
	cfg := &Config{Files: lx.files, given: given{}}
	b := &builder{d: d, cfg: cfg}
	b.build(tree)
	fillDefaults(cfg, d)
	if opts.Backend != "" {
		cfg.Dataplane.Backend = opts.Backend
	}
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
