package check

import (
	"context"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// DNS is DNS_CHECK: a UDP query for name/type must get a response with
// the same id, no error rcode, and at least one answer of that type (SOA
// of the root by default).
type DNS struct {
	T     Target
	Type  string
	QName string
}

// Name implements Checker.
func (*DNS) Name() string { return "DNS_CHECK" }

var dnsTypes = map[string]dnsmessage.Type{"A": dnsmessage.TypeA, "NS": dnsmessage.TypeNS, "CNAME": dnsmessage.TypeCNAME,
	"SOA": dnsmessage.TypeSOA, "MX": dnsmessage.TypeMX, "TXT": dnsmessage.TypeTXT, "AAAA": dnsmessage.TypeAAAA}

// Check implements Checker.
func (c *DNS) Check(ctx context.Context) Result {
	qt, found := dnsTypes[strings.ToUpper(c.Type)]
	if !found {
		return failf("unknown DNS type %q", c.Type)
	}
	name := c.QName
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	qn, err := dnsmessage.NewName(name)
	if err != nil {
		return fail(err)
	}
	id := uint16(time.Now().UnixNano())
	q := dnsmessage.Message{Header: dnsmessage.Header{ID: id, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: qn, Type: qt, Class: dnsmessage.ClassINET}}}
	wire, err := q.Pack()
	if err != nil {
		return fail(err)
	}
	conn, err := c.T.dialer("udp").DialContext(ctx, "udp", c.T.hostPort())
	if err != nil {
		return fail(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(c.T.Timeout))
	if _, err := conn.Write(wire); err != nil {
		return fail(err)
	}
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return fail(err)
		}
		var m dnsmessage.Message
		if err := m.Unpack(buf[:n]); err != nil || m.Header.ID != id || !m.Header.Response {
			continue // not our answer; keep waiting until the deadline
		}
		if m.Header.RCode != dnsmessage.RCodeSuccess {
			return failf("rcode %v", m.Header.RCode)
		}
		for _, a := range m.Answers {
			if a.Header.Type == qt {
				return ok()
			}
		}
		return failf("no %s record in the answer", c.Type)
	}
}
