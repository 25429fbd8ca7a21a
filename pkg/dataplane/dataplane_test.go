package dataplane

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func svc(addr string, port uint16, reals ...Real) Service {
	return Service{Key: ServiceKey{Addr: netip.MustParseAddr(addr), Port: port, Proto: TCP},
		Scheduler: "wlc", Method: DR, Reals: reals}
}

func rs(addr string, w uint32) Real {
	return Real{Addr: netip.MustParseAddr(addr), Port: 80, Weight: w}
}

func TestDiff(t *testing.T) {
	a := svc("10.0.0.100", 80, rs("10.0.1.1", 1), rs("10.0.1.2", 1))
	b := svc("10.0.0.101", 80, rs("10.0.1.3", 1))
	cases := []struct {
		name               string
		installed, desired []Service
		want               string
	}{
		{"empty to one", nil, []Service{a}, "+service tcp:10.0.0.100:80 (2 reals)\n"},
		{"same is no-op", []Service{a, b}, []Service{b, a}, ""},
		{"weight change", []Service{a}, []Service{svc("10.0.0.100", 80, rs("10.0.1.1", 0), rs("10.0.1.2", 1))},
			"~real tcp:10.0.0.100:80 10.0.1.1:80 w0\n"},
		{"real swap", []Service{a}, []Service{svc("10.0.0.100", 80, rs("10.0.1.2", 1), rs("10.0.1.9", 2))},
			"+real tcp:10.0.0.100:80 10.0.1.9:80 w2\n-real tcp:10.0.0.100:80 10.0.1.1:80\n"},
		{"scheduler change", []Service{a}, []Service{func() Service { s := a; s.Scheduler = "mh"; return s }()},
			"~service tcp:10.0.0.100:80\n"},
		{"remove service", []Service{a, b}, []Service{a}, "-service tcp:10.0.0.101:80\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Diff(c.installed, c.desired).String()
			if got != c.want {
				t.Fatalf("got\n%s\nwant\n%s", got, c.want)
			}
		})
	}
}

func TestValidateReportsAllProblems(t *testing.T) {
	bad := []Service{
		svc("10.0.0.1", 80, rs("10.0.1.1", 1), rs("10.0.1.1", 1), rs("fd00::1", 1)),
		svc("10.0.0.1", 80),
		{Key: ServiceKey{Addr: netip.MustParseAddr("10.0.0.2"), Proto: 99, Port: 1}, Method: "XX"},
		{Key: ServiceKey{Addr: netip.MustParseAddr("10.0.0.3"), Proto: UDP}, Method: NAT},
	}
	err := Validate(bad)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"duplicate real 10.0.1.1:80", "another address family", "tcp:10.0.0.1:80: duplicate",
		"unsupported protocol 99", `unknown forwarding method "XX"`, "port 0 is allowed only with persistence"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	ok := svc("10.0.0.3", 0)
	ok.Persistence = 360 * time.Second
	if err := Validate([]Service{ok}); err != nil {
		t.Fatalf("persistent port-0 service rejected: %v", err)
	}
}

func TestRecorderIsDeclarativeAndAtomic(t *testing.T) {
	ctx := context.Background()
	r := NewRecorder()
	a := svc("10.0.0.100", 80, rs("10.0.1.1", 1))
	if err := r.Apply(ctx, []Service{a}); err != nil {
		t.Fatal(err)
	}
	if err := r.Apply(ctx, []Service{a}); err != nil {
		t.Fatal(err)
	}
	if n := len(r.History()); n != 1 {
		t.Fatalf("%d change lists, want 1 (second apply is a no-op)", n)
	}
	// A duplicate is skipped and reported; the rest stays applied.
	var sk *SkippedError
	if err := r.Apply(ctx, []Service{a, a}); !errors.As(err, &sk) || len(sk.Skipped) != 1 {
		t.Fatalf("duplicate: %v", err)
	}
	// One invalid service is skipped while another is applied.
	bad := svc("10.0.0.101", 80)
	bad.Key.Proto = 99
	b := svc("10.0.0.102", 80, rs("10.0.1.2", 1))
	if err := r.Apply(ctx, []Service{a, bad, b}); !errors.As(err, &sk) || len(sk.Skipped) != 1 || sk.Skipped[bad.Key] == nil {
		t.Fatalf("bad service: %v", err)
	}
	if got, _ := r.Services(ctx); len(got) != 2 {
		t.Fatalf("installed %+v, want a and b", got)
	}
	if err := r.Apply(ctx, []Service{a}); err != nil {
		t.Fatal(err)
	}
	r.FailNext(errors.New("kernel says no"))
	if err := r.Apply(ctx, nil); err == nil {
		t.Fatal("injected failure ignored")
	}
	got, _ := r.Services(ctx)
	if len(got) != 1 || got[0].Key != a.Key {
		t.Fatalf("installed %+v", got)
	}
	if err := r.Apply(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.Services(ctx); len(got) != 0 {
		t.Fatalf("not removed: %+v", got)
	}
}
