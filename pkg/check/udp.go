package check

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"time"
)

// UDP is UDP_CHECK: send the payload (random without one); with
// require_reply an answer must come and match the pattern; without it only
// an ICMP error (port unreachable) fails the check.
type UDP struct {
	T            Target
	Payload      []byte
	RequireReply bool
	Pattern      string // hex, X nibbles are wildcards
	MinLen       int
	MaxLen       int
}

// Name implements Checker.
func (*UDP) Name() string { return "UDP_CHECK" }

// Check implements Checker.
func (c *UDP) Check(ctx context.Context) Result {
	conn, err := c.T.dialer("udp").DialContext(ctx, "udp", c.T.hostPort())
	if err != nil {
		return fail(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(c.T.Timeout))
	payload := c.Payload
	if len(payload) == 0 {
		payload = []byte(strconv.FormatInt(time.Now().UnixNano(), 16))
	}
	if _, err := conn.Write(payload); err != nil {
		return fail(err)
	}
	buf := make([]byte, 65536)
	n, err := conn.Read(buf)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && !c.RequireReply {
			return ok() // silence is success unless a reply is required
		}
		return fail(err) // ECONNREFUSED from an ICMP port unreachable
	}
	if !c.RequireReply {
		return ok()
	}
	if n < c.MinLen || (c.MaxLen > 0 && n > c.MaxLen) {
		return failf("reply of %d bytes outside %d-%d", n, c.MinLen, c.MaxLen)
	}
	if !MatchHex(c.Pattern, buf[:n]) {
		return failf("reply %x does not match %s", buf[:n], c.Pattern)
	}
	return ok()
}

// MatchHex compares data with a hex pattern over the shorter of the two;
// an X nibble matches anything.
func MatchHex(pattern string, data []byte) bool {
	pattern = strings.ToLower(strings.ReplaceAll(pattern, " ", ""))
	for i := 0; i+1 < len(pattern)+1 && i/2 < len(data); i += 2 {
		if i >= len(pattern) {
			break
		}
		hi := pattern[i]
		lo := byte('x')
		if i+1 < len(pattern) {
			lo = pattern[i+1]
		}
		b := data[i/2]
		if !nibble(hi, b>>4) || !nibble(lo, b&0x0f) {
			return false
		}
	}
	return true
}

func nibble(p byte, v byte) bool {
	if p == 'x' {
		return true
	}
	n, err := strconv.ParseUint(string(p), 16, 8)
	return err == nil && byte(n) == v
}
