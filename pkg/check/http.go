package check

import (
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

	"github.com/halo-lb/halo/pkg/config"
)

// URL is one url block.
type URL struct {
	Path        string
	Digest      string // MD5 of the body, lower-case hex
	Codes       []config.StatusRange
	VirtualHost string
}

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
}

// Name implements Checker.
func (c *HTTP) Name() string {
	if c.TLS {
		return "SSL_GET"
	}
	return "HTTP_GET"
}

// Check implements Checker.
func (c *HTTP) Check(ctx context.Context) Result {
	ctx, cancel := context.WithTimeout(ctx, c.T.Timeout)
	defer cancel()
	scheme := "http"
	if c.TLS {
		scheme = "https"
	}
	for _, u := range c.URLs {
		if r := c.get(ctx, scheme, u); r.Err != nil {
			return r
		}
	}
	return ok()
}

// get fetches one URL. The connection is dialled here, on the caller's
// goroutine (so a caller that entered a network namespace checks from it),
// and handed to a one-shot transport that adds TLS for SSL_GET.
func (c *HTTP) get(ctx context.Context, scheme string, u URL) Result {
	conn, err := c.T.dialer().DialContext(ctx, "tcp", c.T.hostPort())
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
	_, err = io.Copy(h, io.LimitReader(resp.Body, 16<<20))
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
	return ok()
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
