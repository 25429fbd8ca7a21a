package check

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"

	"github.com/halo-lb/halo/pkg/config"
)

// URL is one url block.
type URL struct {
	Path        string
	Digest      string // MD5 of the body, lower-case hex
	Codes       []config.StatusRange
	VirtualHost string
	// Regex must match the body (NoMatch: must not), starting at
	// MinOffset or later and, with HasMax, at MaxOffset or earlier.
	Regex     *regexp.Regexp
	NoMatch   bool
	MinOffset int
	MaxOffset int
	HasMax    bool
}

// regexBodyLimit bounds the body kept in memory for a regex: keepalived
// matches across its 4 KiB read buffers over the whole body; halo matches
// the first MiB.
const regexBodyLimit = 1 << 20

// HTTP is HTTP_GET and SSL_GET: every URL must answer with an accepted
// status and, when a digest is set, a body with that MD5.
type HTTP struct {
	T           Target
	TLS         bool
	SNI         string
	CA          *x509.CertPool // nil: no verification, as keepalived
	Protocol    string         // 1.0, 1.0C, 1.1
	VirtualHost string
	URLs        []URL
	// Fast is fast_recovery: no delay_loop between URLs while the server
	// is coming up (see URLWalker).
	Fast bool
}

// URLCount implements URLWalker.
func (c *HTTP) URLCount() int { return len(c.URLs) }

// FastRecovery implements URLWalker.
func (c *HTTP) FastRecovery() bool { return c.Fast }

// CheckURL implements URLWalker: one attempt fetches URL i alone.
func (c *HTTP) CheckURL(ctx context.Context, i int) Result {
	if i < 0 || i >= len(c.URLs) {
		return failf("no url %d", i)
	}
	ctx, cancel := context.WithTimeout(ctx, c.T.Timeout)
	defer cancel()
	return c.get(ctx, c.scheme(), c.URLs[i])
}

func (c *HTTP) scheme() string {
	if c.TLS {
		return "https"
	}
	return "http"
}

// Name implements Checker.
func (c *HTTP) Name() string {
	if c.TLS {
		return "SSL_GET"
	}
	return "HTTP_GET"
}

// Check implements Checker: every URL in turn, within one connect_timeout
// (one-shot checks; the scheduler walks the URLs one per attempt).
func (c *HTTP) Check(ctx context.Context) Result {
	ctx, cancel := context.WithTimeout(ctx, c.T.Timeout)
	defer cancel()
	for _, u := range c.URLs {
		if r := c.get(ctx, c.scheme(), u); r.Err != nil {
			return r
		}
	}
	return ok()
}

// get fetches one URL. The connection is dialled here, on the caller's
// goroutine (so a caller that entered a network namespace checks from it),
// and handed to a one-shot transport that adds TLS for SSL_GET.
func (c *HTTP) get(ctx context.Context, scheme string, u URL) Result {
	conn, err := c.T.dialer("tcp").DialContext(ctx, "tcp", c.T.hostPort())
	if err != nil {
		return fail(fmt.Errorf("%s: %w", u.Path, err))
	}
	used := false
	tr := &http.Transport{
		DialContext: func(context.Context, string, string) (net.Conn, error) {
			if used {
				return nil, errors.New("one connection per URL")
			}
			used = true
			return conn, nil
		},
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: c.CA == nil, RootCAs: c.CA, ServerName: c.SNI},
	}
	defer tr.CloseIdleConnections()
	defer conn.Close()
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+c.T.hostPort()+u.Path, nil)
	if err != nil {
		return fail(err)
	}
	host := u.VirtualHost
	if host == "" {
		host = c.VirtualHost
	}
	if host != "" {
		req.Host = host
	}
	if c.Protocol == "1.0" || c.Protocol == "1.0C" {
		req.Proto, req.ProtoMajor, req.ProtoMinor = "HTTP/1.0", 1, 0
	}
	req.Close = true
	req.Header.Set("User-Agent", "halo-check")
	resp, err := client.Do(req)
	if err != nil {
		return fail(err)
	}
	h := md5.New()
	var body bytes.Buffer
	var w io.Writer = h
	if u.Regex != nil {
		w = io.MultiWriter(h, &limitedBuffer{&body, regexBodyLimit})
	}
	_, err = io.Copy(w, io.LimitReader(resp.Body, 16<<20))
	resp.Body.Close()
	if err != nil {
		return failf("%s: reading body: %v", u.Path, err)
	}
	if !statusOK(resp.StatusCode, u.Codes) {
		return failf("%s: status %d", u.Path, resp.StatusCode)
	}
	if u.Digest != "" {
		if got := hex.EncodeToString(h.Sum(nil)); got != u.Digest {
			return failf("%s: digest %s, want %s", u.Path, got, u.Digest)
		}
	}
	if u.Regex != nil {
		if matched := regexMatch(u, body.Bytes()); matched == u.NoMatch {
			if u.NoMatch {
				return failf("%s: body matches regex %s", u.Path, u.Regex)
			}
			return failf("%s: body does not match regex %s", u.Path, u.Regex)
		}
	}
	return ok()
}

// regexMatch reports whether the body has a match starting within the
// URL's offsets (keepalived's regex_min_offset / regex_max_offset).
func regexMatch(u URL, body []byte) bool {
	if u.MinOffset > len(body) {
		return false
	}
	loc := u.Regex.FindIndex(body[u.MinOffset:])
	if loc == nil {
		return false
	}
	return !u.HasMax || u.MinOffset+loc[0] <= u.MaxOffset
}

// limitedBuffer keeps the first n bytes written and swallows the rest, so
// a large body still hashes whole.
type limitedBuffer struct {
	b *bytes.Buffer
	n int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.n - l.b.Len(); room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func statusOK(code int, ranges []config.StatusRange) bool {
	if len(ranges) == 0 {
		return code >= 200 && code <= 299
	}
	for _, r := range ranges {
		if code >= r.From && code <= r.To {
			return true
		}
	}
	return false
}
