package bgp

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"
)

// The privileged tests run speakers inside network namespaces. A Go process
// cannot move GoBGP's goroutines into a namespace, so each speaker is this
// test binary started again under `ip netns exec` in helper mode: argv is
// "bgp-helper CONFIG.json CONTROL.sock", and the test drives it over HTTP on
// the Unix socket.
func TestMain(m *testing.M) {
	if len(os.Args) == 4 && os.Args[1] == "bgp-helper" {
		if err := runHelper(os.Args[2], os.Args[3]); err != nil {
			fmt.Fprintln(os.Stderr, "bgp-helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type helperUpdate struct {
	VirtualServers []VirtualServer
	VIPs           []VIP
}

func runHelper(confPath, sock string) error {
	b, err := os.ReadFile(confPath)
	if err != nil {
		return err
	}
	var cfg Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sp, err := New(cfg, log)
	if err != nil {
		return err
	}
	if err := sp.Start(context.Background()); err != nil {
		return err
	}
	os.Remove(sock)
	l, err := net.Listen("unix", sock)
	if err != nil {
		return err
	}
	done := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("POST /update", func(w http.ResponseWriter, r *http.Request) {
		var u helperUpdate
		if err := json.NewDecoder(r.Body).Decode(&u); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		if err := sp.Update(u.VirtualServers, u.VIPs); err != nil {
			http.Error(w, err.Error(), 500)
		}
	})
	mux.HandleFunc("POST /drain", func(w http.ResponseWriter, r *http.Request) {
		if err := sp.Drain(r.URL.Query().Get("on") == "1"); err != nil {
			http.Error(w, err.Error(), 500)
		}
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(sp.Status())
	})
	mux.HandleFunc("POST /stop", func(w http.ResponseWriter, r *http.Request) {
		sp.Stop(r.Context(), r.URL.Query().Get("withdraw") == "1")
		close(done)
	})
	go http.Serve(l, mux)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-done:
		time.Sleep(100 * time.Millisecond) // let the /stop reply go out
	case <-sig:
		sp.Stop(context.Background(), true)
	}
	return nil
}
