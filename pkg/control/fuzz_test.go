package control

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/halo-lb/halo/pkg/control/api"
	"github.com/halo-lb/halo/pkg/vsmgr"
)

// fuzzHandler answers like the daemon does for drains: the virtual server
// goes through vsmgr.ParseVS (the daemon's own parser) and the real must be
// ADDR:PORT; anything else is an error the API must turn into a clean 400.
type fuzzHandler struct{ drains, bgp int }

func (h *fuzzHandler) Status() api.Status       { return api.Status{Version: "fuzz"} }
func (h *fuzzHandler) Dump() api.Dump           { return api.Dump{} }
func (h *fuzzHandler) Reload() api.ReloadResult { return api.ReloadResult{} }
func (h *fuzzHandler) SetDrain(req api.DrainRequest) error {
	if _, err := vsmgr.ParseVS(req.VirtualServer, req.Protocol); err != nil {
		return err
	}
	if _, err := netip.ParseAddrPort(req.Real); err != nil {
		return fmt.Errorf("real_server: %w", err)
	}
	h.drains++
	return nil
}
func (h *fuzzHandler) SetBGPDrain(bool) error { h.bgp++; return nil }

// FuzzAPI sends arbitrary methods, paths and bodies through the control
// socket's HTTP handler. Whatever comes in: no panic; a known status code;
// every 4xx the handler itself writes is JSON with a non-empty error; a
// drain reaches the daemon only from a body that is a well-formed request
// with no unknown field, and bodies are bounded (64 KiB).
func FuzzAPI(f *testing.F) {
	f.Add("GET", "/v1/status", []byte(nil))
	f.Add("GET", "/v1/dump", []byte(nil))
	f.Add("POST", "/v1/reload", []byte(nil))
	f.Add("POST", "/v1/drain", []byte(`{"virtual_server":"10.0.0.1:80","protocol":"TCP","real_server":"10.0.0.2:80","drain":true}`))
	f.Add("POST", "/v1/drain", []byte(`{"virtual_server":"fwmark:7","real_server":"[fd00::2]:80","drain":false}`))
	f.Add("POST", "/v1/drain", []byte(`{"virtual_server":"group:web","real_server":"x","drain":true,"extra":1}`))
	f.Add("POST", "/v1/drain", []byte(`{"virtual_server":`))
	f.Add("POST", "/v1/bgp/drain", []byte(`{"drain":true}`))
	f.Add("POST", "/v1/bgp/drain", []byte(`[]`))
	f.Add("DELETE", "/v1/../v1/status", []byte("\x00\xff"))
	f.Add("GET", "//v1/status?x=%zz", []byte(nil))

	h := &fuzzHandler{}
	mux := NewMux(h)
	f.Fuzz(func(t *testing.T, method, path string, body []byte) {
		if !validMethod(method) {
			method = "POST"
		}
		if path == "" || path[0] != '/' || strings.ContainsAny(path, " \t\r\n#") || len(path) > 4096 {
			path = "/v1/" + fmt.Sprintf("%x", path)
		}
		req, err := http.NewRequest(method, "http://halod"+path, bytes.NewReader(body))
		if err != nil {
			t.Skip("not a request a client can send:", err)
		}
		drains, bgp := h.drains, h.bgp
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, req)
		code := w.Code
		switch code {
		case 200, 204, 301, 307, 308, 400, 404, 405:
		default:
			t.Fatalf("%s %q: status %d", method, path, code)
		}
		isJSON := w.Header().Get("Content-Type") == "application/json"
		if code == 400 {
			var e api.Error
			if !isJSON || json.Unmarshal(w.Body.Bytes(), &e) != nil || e.Error == "" {
				t.Fatalf("%s %q: 400 without a JSON error: %q", method, path, w.Body.String())
			}
		}
		if h.drains != drains {
			var r api.DrainRequest
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.DisallowUnknownFields()
			if len(body) > 64<<10 || dec.Decode(&r) != nil || code != 204 {
				t.Fatalf("drain reached the daemon from body %q (status %d)", body, code)
			}
		}
		if h.bgp != bgp && (len(body) > 64<<10 || code != 204) {
			t.Fatalf("bgp drain reached the daemon from body %q (status %d)", body, code)
		}
	})
}

func validMethod(m string) bool {
	switch m {
	case "GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS":
		return true
	}
	return false
}
