// Package control is halod's control socket: a Unix socket (mode 0600)
// speaking HTTP/JSON with the types of pkg/control/api, and the client
// haloctl uses.
package control

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/halo-lb/halo/pkg/control/api"
)

// Status is GET /v1/status (kept under this name for existing clients).
type Status = api.Status

// Handler is what the daemon offers the socket.
type Handler interface {
	Status() api.Status
	Dump() api.Dump
	// Reload re-reads the config and reports how it went; it returns once
	// the reload is done or refused.
	Reload() api.ReloadResult
	SetDrain(api.DrainRequest) error
}

// BGPHandler is what a daemon with a BGP speaker adds (haloctl drain).
type BGPHandler interface {
	SetBGPDrain(on bool) error
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
func Listen(path string, h Handler) (*Server, error) {
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
	s := &Server{path: path, l: l, srv: &http.Server{Handler: NewMux(h), ReadHeaderTimeout: 5 * time.Second}}
	go s.srv.Serve(l)
	return s, nil
}

// NewMux routes the API to h (exported for tests over httptest).
func NewMux(h Handler) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) { reply(w, http.StatusOK, h.Status()) })
	mux.HandleFunc("GET /v1/dump", func(w http.ResponseWriter, r *http.Request) { reply(w, http.StatusOK, h.Dump()) })
	mux.HandleFunc("POST /v1/reload", func(w http.ResponseWriter, r *http.Request) { reply(w, http.StatusOK, h.Reload()) })
	mux.HandleFunc("POST /v1/drain", func(w http.ResponseWriter, r *http.Request) {
		var req api.DrainRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			reply(w, http.StatusBadRequest, api.Error{Error: "bad request: " + err.Error()})
			return
		}
		if err := h.SetDrain(req); err != nil {
			reply(w, http.StatusBadRequest, api.Error{Error: err.Error()})
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /v1/bgp/drain", func(w http.ResponseWriter, r *http.Request) {
		var req api.BGPDrainRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			reply(w, http.StatusBadRequest, api.Error{Error: "bad request: " + err.Error()})
			return
		}
		bh, ok := h.(BGPHandler)
		if !ok {
			reply(w, http.StatusBadRequest, api.Error{Error: "this halod has no BGP speaker"})
			return
		}
		if err := bh.SetBGPDrain(req.Drain); err != nil {
			reply(w, http.StatusBadRequest, api.Error{Error: err.Error()})
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// Close stops serving and removes the socket.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	os.Remove(s.path)
	return err
}
