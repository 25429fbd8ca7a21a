package config

import (
	"encoding/hex"
	"math"
	"net/netip"
	"strconv"
	"strings"
)

// checker reads a checker block of the real server at rsAddr.
func (b *builder) checker(n *node, typ, where string, rsAddr netip.Addr) *Checker {
	c := &Checker{Type: typ, Pos: n.pos()}
	var d CheckerDefaults
	where = where + " " + typ
	h := b.checkerOpts(&d)
	h["connect_ip"] = b.addrArg(n, &c.ConnectIP)
	bindto := b.addrArg(n, &c.BindTo)
	var bindtoPos Pos
	h["bindto"] = func(n *node) { bindtoPos = n.pos(); bindto(n) }
	h["bind_if"] = func(n *node) { c.BindIf = b.str(n) }
	h["connect_port"] = func(n *node) {
		if t, ok := b.arg(n, 0); ok {
			if t.Text == "0" {
				b.d.warnf(t.Pos, "Invalid checker connect_port '0'")
				return
			}
			if p, ok := b.port(t, "connect_port"); ok {
				c.ConnectPort = p
			}
		}
	}
	h["bind_port"] = func(n *node) {
		if t, ok := b.arg(n, 0); ok {
			if t.Text == "0" {
				b.d.warnf(t.Pos, "Invalid checker bind_port '0'")
				return
			}
			if p, ok := b.port(t, "bind_port"); ok {
				c.BindPort = p
			}
		}
	}
	h["fwmark"] = func(n *node) {
		v := 0
		if b.intRange(n, 0, math.MaxInt32, &v) {
			c.FWMark = uint32(v)
		}
	}
	if typ != "HTTP_GET" && typ != "SSL_GET" {
		// virtualhost is an HTTP_GET/SSL_GET keyword (and a real and
		// virtual server one); in another checker it is unknown, as in
		// keepalived, never taken and then unused.
		delete(h, "virtualhost")
	}
	switch typ {
	case "HTTP_GET", "SSL_GET":
		h["url"] = func(n *node) {
			if u := b.url(n); u != nil {
				c.URLs = append(c.URLs, u)
			}
		}
		h["http_protocol"] = func(n *node) {
			t, ok := b.arg(n, 0)
			if !ok {
				return
			}
			switch t.Text {
			case "1.0", "1.0C", "1.1", "1.0c":
				c.HTTPProtocol = strings.ToUpper(t.Text)
			default:
				b.d.errorf(t.Pos, "http_protocol: %q is not 1.0, 1.0C or 1.1", t.Text)
			}
		}
		h["enable_sni"] = b.setFlag(&c.EnableSNI)
		h["sni_name"] = func(n *node) { c.SNIName = b.str(n) }
		h["fast_recovery"] = b.setFlag(&c.FastRecovery)
	case "MISC_CHECK":
		// keepalived gives MISC_CHECK none of the connection options (its
		// script opens no socket of halo's): they are unknown keywords there,
		// never taken and then ignored.
		for _, k := range []string{"connect_ip", "connect_port", "bindto", "bind_port", "bind_if", "fwmark", "connect_timeout"} {
			delete(h, k)
		}
		h["misc_path"] = b.scriptArg(&c.MiscPath)
		h["misc_timeout"] = func(n *node) { b.timer(n, 0.000001, 86400, &c.MiscTimeout) }
		h["misc_dynamic"] = b.setFlag(&c.MiscDynamic)
		h["user"] = func(n *node) {
			if c.MiscPath != nil {
				c.MiscPath.User = b.str(n)
				if len(n.args) > 1 {
					c.MiscPath.Group = n.args[1].Text
				}
			}
		}
	case "UDP_CHECK":
		h["payload"] = func(n *node) {
			p, err := parseHex(n.argText())
			if err != nil {
				b.d.errorf(n.pos(), "payload: %v", err)
				return
			}
			c.Payload = p
		}
		h["require_reply"] = func(n *node) {
			c.RequireReply = true
			c.ReplyPattern = strings.ReplaceAll(n.argText(), " ", "")
		}
		h["min_reply_length"] = func(n *node) { b.intRange(n, 0, 65535, &c.MinReplyLength) }
		h["max_reply_length"] = func(n *node) { b.intRange(n, 0, 65535, &c.MaxReplyLength) }
	case "DNS_CHECK":
		h["type"] = func(n *node) {
			t, ok := b.arg(n, 0)
			if !ok {
				return
			}
			up := strings.ToUpper(t.Text)
			switch up {
			case "A", "NS", "CNAME", "SOA", "MX", "TXT", "AAAA":
				c.DNSType = up
			default:
				b.d.errorf(t.Pos, "DNS_CHECK type %q is not A, NS, CNAME, SOA, MX, TXT or AAAA", t.Text)
			}
		}
		h["name"] = func(n *node) { c.DNSName = b.str(n) }
	case "SMTP_CHECK":
		h["helo_name"] = func(n *node) { c.HeloName = b.str(n) }
		h["host"] = func(n *node) {
			b.d.notef(n.pos(), "SMTP_CHECK host { } is deprecated; its options apply to the checker")
			sub := b.checkerOpts(&d)
			sub["connect_ip"] = h["connect_ip"]
			sub["connect_port"] = h["connect_port"]
			sub["bindto"] = h["bindto"]
			sub["bind_port"] = h["bind_port"]
			sub["bind_if"] = h["bind_if"]
			sub["fwmark"] = h["fwmark"]
			b.walk(n.children, where+" host", sub)
		}
	}
	// regex and its options belong in a url block: outside one they are
	// unknown keywords, as in keepalived.
	b.walk(n.children, where, h, "dynamic", "tcp_keepalive")
	// Copy what was set on the checker itself; inheritance is resolved later.
	c.ConnectTimeout, c.ctSet = d.ConnectTimeout, d.ctSet
	c.Retry, c.retrySet = d.Retry, d.retrySet
	c.DelayBeforeRetry, c.dbrSet = d.DelayBeforeRetry, d.dbrSet
	c.DelayLoop, c.dlSet = d.DelayLoop, d.dlSet
	if d.Warmup != nil {
		c.Warmup, c.warmupSet = *d.Warmup, true
	}
	c.Alpha = d.Alpha
	c.LogAllFailures = d.LogAllFailures
	if d.VirtualHost != "" {
		c.VirtualHost = d.VirtualHost
	}
	if typ == "MISC_CHECK" && c.MiscPath == nil {
		b.d.errorf(n.pos(), "MISC_CHECK has no misc_path")
		return nil
	}
	if (typ == "HTTP_GET" || typ == "SSL_GET") && len(c.URLs) == 0 {
		b.d.errorf(n.pos(), "%s has no url block", typ)
		return nil
	}
	if typ != "MISC_CHECK" && !b.checkerFamily(n.pos(), bindtoPos, c, rsAddr) {
		return nil
	}
	return c
}

// checkerFamily applies keepalived's checks on the checker's addresses: a
// bindto of the other family than the destination is dropped ("does not
// match address family"), and a link-local destination without bind_if
// drops the checker ("requires a bind_if").
func (b *builder) checkerFamily(at, bindtoAt Pos, c *Checker, rsAddr netip.Addr) bool {
	dst := rsAddr
	if c.ConnectIP.IsValid() {
		dst = c.ConnectIP
	}
	if !dst.IsValid() {
		return true
	}
	if c.BindTo.IsValid() && c.BindTo.Unmap().Is4() != dst.Unmap().Is4() {
		b.d.warnf(bindtoAt, "%s: bindto %s does not match the address family of %s, ignored", c.Type, c.BindTo, dst)
		c.BindTo = netip.Addr{}
	}
	if dst.Is6() && dst.IsLinkLocalUnicast() && c.BindIf == "" {
		b.d.warnf(at, "%s: link-local address %s requires a bind_if, checker ignored", c.Type, dst)
		return false
	}
	return true
}

func (b *builder) url(n *node) *URL {
	u := &URL{Pos: n.pos()}
	rx := &urlRegex{}
	h := map[string]handler{
		"path": func(n *node) { u.Path = b.str(n) },
		"digest": func(n *node) {
			t, ok := b.arg(n, 0)
			if !ok {
				return
			}
			if _, err := hex.DecodeString(t.Text); err != nil || len(t.Text) != 32 {
				b.d.errorf(t.Pos, "digest %q is not 32 hex digits (an MD5 sum)", t.Text)
				return
			}
			u.Digest = strings.ToLower(t.Text)
		},
		"status_code": func(n *node) {
			for _, a := range n.args {
				lo, hi, found := strings.Cut(a.Text, "-")
				from, err1 := strconv.Atoi(lo)
				to := from
				var err2 error
				if found {
					to, err2 = strconv.Atoi(hi)
				}
				if err1 != nil || err2 != nil || from < 100 || to > 599 || to < from {
					b.d.errorf(a.Pos, "status_code %q is not a code or range within 100-599", a.Text)
					continue
				}
				u.StatusCodes = append(u.StatusCodes, StatusRange{from, to})
			}
			if len(n.args) == 0 {
				b.arg(n, 0)
			}
		},
		"virtualhost": func(n *node) { u.VirtualHost = b.str(n) },
	}
	b.regexHandlers(h, rx)
	b.walk(n.children, "url", h)
	b.finishRegex(u, rx)
	if u.Path == "" {
		b.d.errorf(n.pos(), "url has no path")
		return nil
	}
	return u
}

// parseHex reads keepalived's loose hex: blank-separated groups read in
// pairs from the left, a lone last digit making a byte of its own
// ("Ab12f 3 456" = AB 12 0F 03 45 06).
func parseHex(s string) ([]byte, error) {
	var out []byte
	for _, g := range strings.Fields(s) {
		for i := 0; i < len(g); i += 2 {
			chunk := "0" + g[i:i+1]
			if i+1 < len(g) {
				chunk = g[i : i+2]
			}
			v, err := strconv.ParseUint(chunk, 16, 8)
			if err != nil {
				return nil, errorString("bad hex " + strconv.Quote(g))
			}
			out = append(out, byte(v))
		}
	}
	return out, nil
}
