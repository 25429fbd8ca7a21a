// Package control is halod's control socket: a Unix socket (mode 0600)
// speaking HTTP/JSON, and the client haloctl uses.
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/halo-lb/halo/pkg/vrrpd"
	"github.com/halo-lb/halo/pkg/vsmgr"
)

// Status is GET /v1/status.
type Status struct {
	VRRP           []vrrpd.Status   `json:"vrrp"`
	VirtualServers []vsmgr.VSStatus `json:"virtual_servers"`
}

// Server serves the control socket.
type Server struct {
	path string
	l    net.Listener
	srv  *http.Server
}

// Listen creates the socket at path. A stale socket left by a dead halod
// is replaced; one that a running halod answers on is not (two halods on
// one host need two paths).
func Listen(path string, status func() Status) (*Server, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if _, err := os.Stat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("control socket %s is in use by another halod", path)
		}
		os.Remove(path)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(status())
	})
	s := &Server{path: path, l: l, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}}
	go s.srv.Serve(l)
	return s, nil
}

// Close stops serving and removes the socket.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	os.Remove(s.path)
	return err
}

// Client talks to a control socket.
type Client struct {
	Path string
	http *http.Client
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	return &Client{Path: path, http: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}}}}
}

// Status fetches the daemon's status.
func (c *Client) Status() (*Status, []byte, error) {
	resp, err := c.http.Get("http://halod/v1/status")
	if err != nil {
		return nil, nil, fmt.Errorf("cannot reach halod at %s: %w", c.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, body, errors.New("halod: " + resp.Status)
	}
	var st Status
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, body, fmt.Errorf("bad status from halod: %w", err)
	}
	return &st, body, nil
}
