package config

import (
	"strings"
	"testing"
)

func oneChecker(t *testing.T, cfg *Config) *Checker {
	t.Helper()
	if len(cfg.VirtualServers) != 1 || len(cfg.VirtualServers[0].Reals) != 1 || len(cfg.VirtualServers[0].Reals[0].Checkers) != 1 {
		t.Fatalf("want one checker, config %+v", cfg.VirtualServers)
	}
	return cfg.VirtualServers[0].Reals[0].Checkers[0]
}

// Every connection option keepalived gives a checker reaches the model.
func TestCheckerConnectionOptions(t *testing.T) {
	cfg, d := load(t, `virtual_server 10.1.1.1 80 {
  real_server 10.2.2.2 80 {
    TCP_CHECK {
      connect_ip 10.3.3.3
      connect_port 8080
      bindto 10.4.4.4
      bind_port 4321
      bind_if eth9
      fwmark 77
    }
  }
}
`)
	c := oneChecker(t, cfg)
	if c.ConnectIP.String() != "10.3.3.3" || c.ConnectPort != 8080 || c.BindTo.String() != "10.4.4.4" ||
		c.BindPort != 4321 || c.BindIf != "eth9" || c.FWMark != 77 {
		t.Errorf("checker %+v\n%s", c, diagText(d))
	}
	if strings.Contains(diagText(d), "not used") {
		t.Errorf("a connection option is reported unused:\n%s", diagText(d))
	}
}

// keepalived gives MISC_CHECK no connection options: halo must not take
// them and then ignore them, it names them as unknown there.
func TestMiscCheckHasNoConnectionOptions(t *testing.T) {
	_, d := load(t, `virtual_server 10.1.1.1 80 {
  real_server 10.2.2.2 80 {
    MISC_CHECK {
      misc_path /bin/true
      fwmark 5
      bind_port 1000
      connect_timeout 3
    }
  }
}
`)
	all := diagText(d)
	for _, k := range []string{"fwmark", "bind_port", "connect_timeout"} {
		if !strings.Contains(all, `warning: unknown keyword "`+k+`" in real_server`) {
			t.Errorf("%s in MISC_CHECK not reported:\n%s", k, all)
		}
	}
}

// bind_to is not a keepalived keyword (bindto is): it is reported, not
// silently taken.
func TestBindToSpelling(t *testing.T) {
	_, d := load(t, `virtual_server 10.1.1.1 80 {
  real_server 10.2.2.2 80 {
    TCP_CHECK {
      bind_to 10.4.4.4
    }
  }
}
`)
	if !strings.Contains(diagText(d), `unknown keyword "bind_to"`) {
		t.Errorf("bind_to accepted silently:\n%s", diagText(d))
	}
}

func TestURLRegexAndFastRecovery(t *testing.T) {
	cfg, d := load(t, `virtual_server 10.1.1.1 80 {
  protocol TCP
  lb_algo rr
  lb_kind NAT
  real_server 10.2.2.2 80 {
    HTTP_GET {
      fast_recovery
      url {
        path /a
        regex "status: (ok|fine)"
        regex_options caseless multiline
        regex_min_offset 3
        regex_max_offset 40
      }
      url {
        path /b
        regex "maintenance"
        regex_no_match
      }
    }
  }
}
`)
	c := oneChecker(t, cfg)
	if !c.FastRecovery || len(c.URLs) != 2 {
		t.Fatalf("checker %+v\n%s", c, diagText(d))
	}
	a, b := c.URLs[0], c.URLs[1]
	if a.Regex != "(?im)status: (ok|fine)" || a.RegexNoMatch || a.RegexMinOffset != 3 || a.RegexMaxOffset == nil || *a.RegexMaxOffset != 40 {
		t.Errorf("url /a: %+v", a)
	}
	if b.Regex != "maintenance" || !b.RegexNoMatch || b.RegexMaxOffset != nil {
		t.Errorf("url /b: %+v", b)
	}
	for _, x := range d.List {
		if x.Severity >= Warning {
			t.Errorf("unexpected diagnostic %s", x)
		}
	}
}

// What RE2 cannot do is said, with its position: a PCRE-only pattern is an
// error, an option without equivalent a warning, regex settings without a
// regex a warning (keepalived drops them too), min beyond max drops both.
func TestURLRegexDiagnostics(t *testing.T) {
	cfg, d := load(t, `virtual_server 10.1.1.1 80 {
  real_server 10.2.2.2 80 {
    HTTP_GET {
      url {
        path /lookbehind
        regex "(?<=a)b"
      }
      url {
        path /opts
        regex "x"
        regex_options extended nosuch
        regex_stack 1000 2000
      }
      url {
        path /nore
        regex_no_match
        regex_min_offset 2
      }
      url {
        path /offsets
        regex "x"
        regex_min_offset 50
        regex_max_offset 10
      }
    }
  }
}
`)
	all := diagText(d)
	for _, want := range []string{
		`6:15: error: regex "(?<=a)b":`,
		"11:23: warning: regex_options extended has no equivalent in halo's RE2 regex engine",
		`11:32: warning: unknown regex_options "nosuch"`,
		"12:9: note: regex_stack",
		"16:9: warning: regex_no_match without a regex in this url",
		"17:9: warning: regex_min_offset without a regex in this url",
		"23:9: warning: regex_min_offset 50 is beyond regex_max_offset 10, both ignored",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("missing %q in:\n%s", want, all)
		}
	}
	if cfg != nil && len(cfg.VirtualServers) == 1 {
		for _, u := range cfg.VirtualServers[0].Reals[0].Checkers[0].URLs {
			if u.Path == "/offsets" && (u.RegexMinOffset != 0 || u.RegexMaxOffset != nil) {
				t.Errorf("offsets kept: %+v", u)
			}
			if u.Path == "/nore" && (u.RegexNoMatch || u.RegexMinOffset != 0) {
				t.Errorf("regex settings without regex kept: %+v", u)
			}
		}
	}
}

// XDP keeps no per-real connection counts, so connection thresholds are
// refused there (with the real's position) and accepted with IPVS.
func TestThresholdsNeedIPVS(t *testing.T) {
	vs := `virtual_server 10.1.1.1 80 {
  lb_kind DR
  real_server 10.2.2.2 80 {
    uthreshold 100
    lthreshold 10
  }
}
`
	_, d := load(t, "dataplane {\n  backend xdp\n  interface eth0\n}\n"+vs)
	if !strings.Contains(diagText(d), "7:3: error: real_server 10.2.2.2: uthreshold/lthreshold need `backend ipvs`") {
		t.Errorf("thresholds accepted with xdp:\n%s", diagText(d))
	}
	cfg, d := load(t, "dataplane {\n  backend ipvs\n}\n"+vs)
	if strings.Contains(diagText(d), "threshold") || cfg.VirtualServers[0].Reals[0].UThreshold != 100 {
		t.Errorf("thresholds with ipvs:\n%s", diagText(d))
	}
}

// keepalived drops a bindto of the wrong family and a checker toward a
// link-local address without bind_if, each with a message.
func TestCheckerAddressFamilies(t *testing.T) {
	cfg, d := load(t, `virtual_server 10.1.1.1 80 {
  real_server 10.2.2.2 80 {
    TCP_CHECK {
      bindto fd00::1
    }
    TCP_CHECK {
      connect_ip fe80::1
    }
    TCP_CHECK {
      connect_ip fe80::1
      bind_if eth0
    }
  }
}
`)
	all := diagText(d)
	for _, want := range []string{
		"4:7: warning: TCP_CHECK: bindto fd00::1 does not match the address family of 10.2.2.2, ignored",
		"6:5: warning: TCP_CHECK: link-local address fe80::1 requires a bind_if, checker ignored",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("missing %q in:\n%s", want, all)
		}
	}
	cs := cfg.VirtualServers[0].Reals[0].Checkers
	if len(cs) != 2 || cs[0].BindTo.IsValid() || cs[1].BindIf != "eth0" {
		t.Fatalf("checkers %+v", cs)
	}
}

// regex outside a url block is not taken and then ignored: it is unknown
// there, as in keepalived.
func TestRegexOutsideURL(t *testing.T) {
	_, d := load(t, `virtual_server 10.1.1.1 80 {
  real_server 10.2.2.2 80 {
    HTTP_GET {
      regex "x"
      url { path / }
    }
  }
}
`)
	if !strings.Contains(diagText(d), `4:7: warning: unknown keyword "regex"`) {
		t.Errorf("regex outside url:\n%s", diagText(d))
	}
}

// virtualhost belongs to HTTP_GET and SSL_GET among the checkers.
func TestVirtualhostOnlyInHTTPCheckers(t *testing.T) {
	cfg, d := load(t, `virtual_server 10.1.1.1 80 {
  real_server 10.2.2.2 80 {
    TCP_CHECK {
      virtualhost www.example.test
    }
    HTTP_GET {
      virtualhost www.example.test
      url { path / }
    }
  }
}
`)
	all := diagText(d)
	if !strings.Contains(all, `4:7: warning: unknown keyword "virtualhost"`) || strings.Contains(all, `7:7: warning`) {
		t.Errorf("virtualhost diagnostics:\n%s", all)
	}
	if c := cfg.VirtualServers[0].Reals[0].Checkers[1]; c.VirtualHost != "www.example.test" {
		t.Errorf("HTTP_GET virtualhost %q", c.VirtualHost)
	}
}
