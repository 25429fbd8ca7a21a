package check

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/halo-lb/halo/pkg/config"
)

// url { regex … } against real HTTP responses: match, regex_no_match,
// and the offsets that bound where the match may start.
func TestHTTPRegex(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "Status: OK\nversion 2\n") })
	mux.HandleFunc("/maint", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "down for maintenance") })
	mux.HandleFunc("/x", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "aaaa-x-") })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	hp := strings.TrimPrefix(srv.URL, "http://")
	mk := func(u URL) *HTTP { return &HTTP{T: target(t, hp, time.Second), URLs: []URL{u}} }
	re := regexp.MustCompile

	expectOK(t, mk(URL{Path: "/status", Regex: re("(?im)^status: ok$")}))
	expectFail(t, mk(URL{Path: "/status", Regex: re("status: ok")}), "does not match regex")
	expectFail(t, mk(URL{Path: "/maint", Regex: re("maintenance"), NoMatch: true}), "body matches regex")
	expectOK(t, mk(URL{Path: "/status", Regex: re("maintenance"), NoMatch: true}))
	// "x" starts at offset 5.
	expectOK(t, mk(URL{Path: "/x", Regex: re("x"), MaxOffset: 5, HasMax: true}))
	expectFail(t, mk(URL{Path: "/x", Regex: re("x"), MaxOffset: 4, HasMax: true}), "does not match")
	expectOK(t, mk(URL{Path: "/x", Regex: re("x"), MinOffset: 5}))
	expectFail(t, mk(URL{Path: "/x", Regex: re("x"), MinOffset: 6}), "does not match")
	expectFail(t, mk(URL{Path: "/x", Regex: re("x"), MinOffset: 100}), "does not match")
}

// One scheduled attempt fetches one URL with that URL's own settings:
// its path, status codes and Host header.
func TestHTTPCheckURLUsesItsOwnSettings(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.URL.Path+"@"+r.Host)
		mu.Unlock()
		if r.URL.Path == "/gone" {
			w.WriteHeader(410)
		}
	}))
	defer srv.Close()
	h := &HTTP{T: target(t, strings.TrimPrefix(srv.URL, "http://"), time.Second), VirtualHost: "vs.test", URLs: []URL{
		{Path: "/a"},
		{Path: "/gone", VirtualHost: "url.test", Codes: []config.StatusRange{{From: 410, To: 410}}},
		{Path: "/gone"},
	}}
	if h.URLCount() != 3 {
		t.Fatalf("URLCount %d", h.URLCount())
	}
	for i, want := range []string{"", "", "status 410"} {
		r := h.CheckURL(context.Background(), i)
		if (want == "") != (r.Err == nil) || (want != "" && !strings.Contains(r.Err.Error(), want)) {
			t.Errorf("url %d: %v, want %q", i, r.Err, want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(got, " ") != "/a@vs.test /gone@url.test /gone@vs.test" {
		t.Fatalf("requests %v", got)
	}
}

// The scheduler, the URL walk and HTTP_GET together against a real server,
// on the fake clock: while up one URL is fetched per delay_loop; when /b
// breaks the server goes down after its retry; once /b answers again every
// URL is fetched anew, and with fast_recovery back to back.
func TestSchedulerHTTPRecoveryAgainstRealServer(t *testing.T) {
	for _, fast := range []bool{false, true} {
		t.Run(fmt.Sprintf("fast_recovery=%v", fast), func(t *testing.T) {
			var mu sync.Mutex
			broken := false
			reqs := make(chan string, 64)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				bad := broken && r.URL.Path == "/b"
				mu.Unlock()
				reqs <- r.URL.Path
				if bad {
					w.WriteHeader(503)
				}
			}))
			defer srv.Close()
			h := &HTTP{T: target(t, strings.TrimPrefix(srv.URL, "http://"), time.Second), Fast: fast,
				URLs: []URL{{Path: "/a"}, {Path: "/b"}}}
			clk := &fakeClock{now: t0}
			s := NewScheduler(4)
			s.Clock = clk
			verdicts := make(chan bool, 8)
			j := &Job{Checker: h, Probe: NewProbe(1, dbr, dl, false, time.Time{}), Timeout: time.Second,
				OnChange: func(up bool, _ int, _ error) { verdicts <- up }}
			ctx, cancel := context.WithCancel(context.Background())
			defer func() { cancel(); s.Wait() }()
			s.Start(ctx, j, 0)
			gap := dl
			if fast {
				gap = 0
			}
			step := func(delay time.Duration, path string) {
				t.Helper()
				if d := clk.armed(t); d != delay {
					t.Fatalf("fetch of %s due after %v, want %v", path, d, delay)
				}
				clk.advance(delay)
				select {
				case got := <-reqs:
					if got != path {
						t.Fatalf("fetched %s, want %s", got, path)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("%s never fetched", path)
				}
			}
			step(0, "/a")
			step(gap, "/b") // first pass: back to back only with fast_recovery
			step(dl, "/a")
			mu.Lock()
			broken = true
			mu.Unlock()
			step(dl, "/b")
			step(dbr, "/b") // retry 1
			if up := <-verdicts; up {
				t.Fatal("server still up after /b failed twice")
			}
			step(dl, "/b")
			mu.Lock()
			broken = false
			mu.Unlock()
			step(dl, "/b") // the failed URL answers
			step(gap, "/a")
			step(gap, "/b")
			clk.armed(t)
			select {
			case up := <-verdicts:
				if !up {
					t.Fatal("verdict went down again")
				}
			default:
				t.Fatal("server not up after walking every URL again")
			}
		})
	}
}
