package config

import (
	"regexp"
	"strconv"
	"strings"
)

// regexOptions maps keepalived's PCRE2 regex_options to Go RE2 flags. An
// empty value is an option whose effect RE2 already has (or that changes
// nothing without PCRE2's callouts and offset limits); an option missing
// from the map is one RE2 cannot give, and is warned about.
var regexOptions = map[string]string{
	"caseless":          "i",
	"multiline":         "m",
	"dotall":            "s",
	"ungreedy":          "U",
	"dollar_endonly":    "", // RE2's $ without (?m) matches at the very end only
	"utf":               "", // RE2 reads UTF-8 always
	"never_utf":         "",
	"never_ucp":         "",
	"never_backslash_c": "", // RE2 has no \C
	"no_auto_capture":   "",
	"no_auto_possess":   "",
	"no_dotstar_anchor": "",
	"no_start_optimize": "",
	"auto_callout":      "",
	"use_offset_limit":  "",
}

// pcre2Options is keepalived 2.2.7's list; the ones RE2 cannot honour are
// named in a warning, anything else is not a regex option at all.
var pcre2Options = "allow_empty_class alt_bsux auto_callout caseless dollar_endonly dotall dupnames extended " +
	"firstline match_unset_backref multiline never_ucp never_utf no_auto_capture no_auto_possess " +
	"no_dotstar_anchor no_start_optimize ucp ungreedy utf never_backslash_c alt_circumflex alt_verbnames use_offset_limit"

type urlRegex struct {
	pattern  *Token
	flags    string
	noMatch  *node
	min, max *node
	minV     int
	maxV     int
	options  *node
}

// regexHandlers adds a url block's regex keywords to h; finishRegex
// compiles what they gave once the block is read.
func (b *builder) regexHandlers(h map[string]handler, rx *urlRegex) {
	h["regex"] = func(n *node) {
		if len(n.args) != 1 {
			b.d.errorf(n.pos(), "regex takes one (quoted) pattern, got %d words", len(n.args))
			return
		}
		t := n.args[0]
		rx.pattern = &t
	}
	h["regex_no_match"] = func(n *node) { rx.noMatch = n }
	h["regex_options"] = func(n *node) {
		rx.options = n
		for _, a := range n.args {
			f, ok := regexOptions[a.Text]
			switch {
			case ok:
				if f != "" && !strings.Contains(rx.flags, f) {
					rx.flags += f
				}
			case strings.Contains(" "+pcre2Options+" ", " "+a.Text+" "):
				b.d.warnf(a.Pos, "regex_options %s has no equivalent in halo's RE2 regex engine and is ignored", a.Text)
			default:
				b.d.warnf(a.Pos, "unknown regex_options %q, ignored", a.Text)
			}
		}
	}
	offset := func(dst **node, v *int) handler {
		return func(n *node) {
			t, ok := b.arg(n, 0)
			if !ok {
				return
			}
			x, err := strconv.Atoi(t.Text)
			if err != nil || x < 0 {
				b.d.warnf(t.Pos, "invalid %s %q, ignored", n.key.Text, t.Text)
				return
			}
			*dst, *v = n, x
		}
	}
	h["regex_min_offset"] = offset(&rx.min, &rx.minV)
	h["regex_max_offset"] = offset(&rx.max, &rx.maxV)
	h["regex_stack"] = func(n *node) {
		b.d.notef(n.pos(), "regex_stack sizes PCRE2's JIT stack; halo's RE2 engine needs none, so it is not used")
	}
}

func (b *builder) finishRegex(u *URL, rx *urlRegex) {
	if rx.pattern == nil {
		for _, n := range []*node{rx.noMatch, rx.options, rx.min, rx.max} {
			if n != nil {
				// keepalived: "regex parameters specified without regex".
				b.d.warnf(n.pos(), "%s without a regex in this url, ignored", n.key.Text)
			}
		}
		return
	}
	src := rx.pattern.Text
	if rx.flags != "" {
		src = "(?" + rx.flags + ")" + src
	}
	if _, err := regexp.Compile(src); err != nil {
		b.d.errorf(rx.pattern.Pos, "regex %q: %v (halo uses RE2 syntax: no backreferences or lookaround)", rx.pattern.Text, err)
		return
	}
	u.Regex = src
	u.RegexNoMatch = rx.noMatch != nil
	if rx.min != nil {
		u.RegexMinOffset = rx.minV
	}
	if rx.max != nil {
		if rx.min != nil && rx.minV > rx.maxV {
			// keepalived drops both offsets in this case.
			b.d.warnf(rx.max.pos(), "regex_min_offset %d is beyond regex_max_offset %d, both ignored", rx.minV, rx.maxV)
			u.RegexMinOffset = 0
			return
		}
		m := rx.maxV
		u.RegexMaxOffset = &m
	}
}
