package config

import (
	"math"
	"net/netip"
	"strconv"
	"strings"
)

// The walker and the value helpers: how a keyword node becomes a typed
// value, with the diagnostics keepalived gives for bad values.

// builder turns the keyword tree into the typed model, reporting problems
// with their positions and carrying on, so one run reports all of them.
type builder struct {
	d   *Diags
	cfg *Config
}

type handler func(n *node)

// walk dispatches each node to its handler. Keywords halo knows but does not
// act on get a note; anything else is an unknown keyword (a warning, as in
// keepalived). An unknown block is skipped whole, by brace balance, instead
// of keepalived's confusing re-parse of its body at the current level.
func (b *builder) walk(nodes []*node, where string, h map[string]handler, ignored ...string) {
	for _, n := range nodes {
		if f, ok := h[n.key.Text]; ok {
			f(n)
			continue
		}
		if contains(ignored, n.key.Text) {
			b.d.notef(n.pos(), "%q is accepted but not used by halo", n.key.Text)
			continue
		}
		if n.key.Text == "{" {
			continue // orphan block, already reported
		}
		if n.block {
			b.d.warnf(n.pos(), "unknown block %q in %s, skipped", n.key.Text, where)
		} else {
			b.d.warnf(n.pos(), "unknown keyword %q in %s", n.key.Text, where)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// arg returns the i-th argument or reports it missing.
func (b *builder) arg(n *node, i int) (Token, bool) {
	if i < len(n.args) {
		return n.args[i], true
	}
	p := n.pos()
	if len(n.args) > 0 {
		last := n.args[len(n.args)-1]
		p = last.Pos
		p.Col += len(last.Text)
	} else {
		p.Col += len(n.key.Text)
	}
	b.d.errorf(p, "%s: missing value", n.key.Text)
	return Token{}, false
}

func (b *builder) str(n *node) string {
	t, _ := b.arg(n, 0)
	return t.Text
}

func (b *builder) intRange(n *node, lo, hi int, dst *int) bool {
	t, ok := b.arg(n, 0)
	if !ok {
		return false
	}
	v, err := strconv.Atoi(t.Text)
	if err != nil {
		b.d.errorf(t.Pos, "%s: %q is not a number", n.key.Text, t.Text)
		return false
	}
	if v < lo || v > hi {
		b.d.errorf(t.Pos, "%s: %d out of range %d-%d", n.key.Text, v, lo, hi)
		return false
	}
	*dst = v
	b.mark(dst)
	return true
}

// timer parses seconds with up to 6 decimals.
func (b *builder) timer(n *node, lo, hi float64, dst *Duration) bool {
	t, ok := b.arg(n, 0)
	if !ok {
		return false
	}
	v, err := strconv.ParseFloat(t.Text, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		b.d.errorf(t.Pos, "%s: %q is not a time in seconds", n.key.Text, t.Text)
		return false
	}
	if v < lo || v > hi {
		b.d.errorf(t.Pos, "%s: %s out of range %g-%g seconds", n.key.Text, t.Text, lo, hi)
		return false
	}
	*dst = secs(v)
	b.mark(dst)
	return true
}

// flag is a boolean keyword: bare means true, else on/off/true/false/yes/no.
func (b *builder) flag(n *node) bool {
	if len(n.args) == 0 {
		return true
	}
	switch n.args[0].Text {
	case "on", "true", "yes":
		return true
	case "off", "false", "no":
		return false
	}
	b.d.errorf(n.args[0].Pos, "%s: %q is not a boolean (on|off|true|false|yes|no)", n.key.Text, n.args[0].Text)
	return false
}

func (b *builder) setFlag(dst *bool) handler {
	return func(n *node) { *dst = b.flag(n); b.mark(dst) }
}

// mark records that the config gave the field at p (a pointer into the
// model) explicitly, so defaults leave it alone. See defaults.go.
func (b *builder) mark(p any) { b.cfg.given.mark(p) }

// given reports whether the config gave the field at p explicitly.
func (b *builder) given(p any) bool { return b.cfg.given.has(p) }

// uintArg reads a whole number in lo..hi as keepalived's
// read_unsigned_strvec does (no fraction, no sign). A bad value is a warning
// and the keyword is ignored, as keepalived reports "'X' invalid - ignoring"
// and carries on; what names the keyword in the message.
func (b *builder) uintArg(n *node, what string, lo, hi uint64) (uint64, bool) {
	t, ok := b.arg(n, 0)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseUint(t.Text, 10, 64)
	if err != nil || v < lo || v > hi {
		b.d.warnf(t.Pos, "%s '%s' invalid - ignoring", what, t.Text)
		return 0, false
	}
	return v, true
}

func (b *builder) addr(t Token, what string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(t.Text)
	if err != nil {
		b.d.errorf(t.Pos, "%s: %q is not an IP address", what, t.Text)
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

func (b *builder) addrArg(n *node, dst *netip.Addr) handler {
	return func(n *node) {
		if t, ok := b.arg(n, 0); ok {
			if a, ok := b.addr(t, n.key.Text); ok {
				*dst = a
			}
		}
	}
}

func (b *builder) port(t Token, what string) (int, bool) {
	v, err := strconv.Atoi(t.Text)
	if err != nil || v < 0 || v > 65535 {
		b.d.errorf(t.Pos, "%s: %q is not a port (0-65535)", what, t.Text)
		return 0, false
	}
	return v, true
}

// lines returns the entries of a value block: each child statement is one
// entry (its words), as keepalived reads virtual_ipaddress and friends.
func (b *builder) lines(n *node) []*node {
	if !n.block {
		if len(n.args) > 0 {
			// keepalived also accepts a single entry on the keyword's line
			// for a few lists; treat the arguments as one entry.
			return []*node{{key: n.args[0], args: n.args[1:], raw: n.raw}}
		}
		b.d.errorf(n.pos(), "%s: expected a { } block", n.key.Text)
		return nil
	}
	return n.children
}

// script parses a script keyword's value: "cmd args" [user [group]].
func (b *builder) script(n *node) *Script {
	rest := strings.TrimSpace(strings.TrimPrefix(n.raw, n.key.Text))
	if rest == "" {
		b.arg(n, 0)
		return nil
	}
	words, err := shellWords(rest)
	if err != nil || len(words) == 0 {
		b.d.errorf(n.pos(), "%s: %v", n.key.Text, err)
		return nil
	}
	s := &Script{Raw: words[0], Pos: n.args[0].Pos}
	argv, err := shellWords(words[0])
	if err != nil || len(argv) == 0 {
		b.d.errorf(s.Pos, "%s: cannot split command %q: %v", n.key.Text, words[0], err)
		return nil
	}
	s.Argv = argv
	s.Shell = needsShell(words[0])
	if len(words) > 1 {
		s.User = words[1]
	}
	if len(words) > 2 {
		s.Group = words[2]
	}
	if len(words) > 3 {
		b.d.warnf(n.pos(), "%s: extra words after user and group: %q", n.key.Text, strings.Join(words[3:], " "))
	}
	return s
}

func (b *builder) scriptArg(dst **Script) handler { return func(n *node) { *dst = b.script(n) } }

// optScript parses a keyword whose script is optional (notify_deleted).
func (b *builder) optScript(n *node) *Script {
	if len(n.args) == 0 {
		return &Script{Pos: n.pos()}
	}
	return b.script(n)
}

func merge(maps ...map[string]handler) map[string]handler {
	out := map[string]handler{}
	for _, m := range maps {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func tokTexts(ts []Token) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Text
	}
	return out
}

type errorString string

func (e errorString) Error() string { return string(e) }
