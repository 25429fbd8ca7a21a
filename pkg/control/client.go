package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/halo-lb/halo/pkg/control/api"
)

// Client talks to a control socket.
type Client struct {
	Path string
	http *http.Client
}

// NewClient returns a client for the socket at path. Reloads can take as
// long as the config takes to load, so the timeout is generous.
func NewClient(path string) *Client {
	return &Client{Path: path, http: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}}}}
}

// do sends a request and returns the raw body of a 2xx answer; any other
// answer becomes an error carrying the daemon's message.
func (c *Client) do(method, path string, body any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://halod"+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach halod at %s: %w", c.Path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		var e api.Error
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			return raw, errors.New(e.Error)
		}
		return raw, errors.New("halod: " + resp.Status)
	}
	return raw, nil
}

func (c *Client) get(path string, v any) ([]byte, error) {
	raw, err := c.do(http.MethodGet, path, nil)
	if err != nil {
		return raw, err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return raw, fmt.Errorf("bad answer from halod: %w", err)
	}
	return raw, nil
}

// Status fetches the daemon's status and the raw JSON.
func (c *Client) Status() (*api.Status, []byte, error) {
	var st api.Status
	raw, err := c.get("/v1/status", &st)
	if err != nil {
		return nil, raw, err
	}
	return &st, raw, nil
}

// Dump fetches the full state and the raw JSON.
func (c *Client) Dump() (*api.Dump, []byte, error) {
	var d api.Dump
	raw, err := c.get("/v1/dump", &d)
	if err != nil {
		return nil, raw, err
	}
	return &d, raw, nil
}

// Reload asks the daemon to reload its config.
func (c *Client) Reload() (*api.ReloadResult, error) {
	raw, err := c.do(http.MethodPost, "/v1/reload", nil)
	if err != nil {
		return nil, err
	}
	var r api.ReloadResult
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("bad answer from halod: %w", err)
	}
	return &r, nil
}

// BGPDrain withdraws every BGP route (on) or announces again (off).
func (c *Client) BGPDrain(on bool) error {
	_, err := c.do(http.MethodPost, "/v1/bgp/drain", api.BGPDrainRequest{Drain: on})
	return err
}

// Drain drains (or, with Drain false, enables) a real server.
func (c *Client) Drain(req api.DrainRequest) error {
	_, err := c.do(http.MethodPost, "/v1/drain", req)
	return err
}
