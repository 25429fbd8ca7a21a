package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func feed(t *testing.T, events ...event) (string, bool) {
	t.Helper()
	var out bytes.Buffer
	s := &summary{out: &out, output: map[key][]string{}, ended: map[key]bool{}}
	for _, e := range events {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		var back event
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		s.add(back)
	}
	bad := s.report()
	return out.String(), bad
}

func TestSkipsCountedApartWithReasons(t *testing.T) {
	const p = "github.com/halo-lb/halo/pkg/x"
	out, bad := feed(t,
		event{Action: "run", Package: p, Test: "TestA"},
		event{Action: "output", Package: p, Test: "TestA", Output: "=== RUN   TestA\n"},
		event{Action: "pass", Package: p, Test: "TestA"},
		event{Action: "run", Package: p, Test: "TestB"},
		event{Action: "output", Package: p, Test: "TestB", Output: "=== RUN   TestB\n"},
		event{Action: "output", Package: p, Test: "TestB", Output: "    b_test.go:9: needs IPVS\n"},
		event{Action: "output", Package: p, Test: "TestB", Output: "--- SKIP: TestB (0.00s)\n"},
		event{Action: "skip", Package: p, Test: "TestB"},
		event{Action: "output", Package: p, Output: "ok  \t" + p + "\t0.1s\n"},
		event{Action: "pass", Package: p},
		event{Action: "skip", Package: "github.com/halo-lb/halo/cmd/y"}, // [no test files]
	)
	if bad {
		t.Error("a run with only passes and skips reported failure")
	}
	if !strings.Contains(out, "SKIP pkg/x TestB: b_test.go:9: needs IPVS\n") {
		t.Errorf("skip reason missing:\n%s", out)
	}
	if !strings.HasSuffix(out, "1 passed, 0 failed, 1 skipped\n") {
		t.Errorf("closing line wrong:\n%s", out)
	}
}

func TestFailuresAndBuildFailuresCount(t *testing.T) {
	const p, q = "example/p", "example/q"
	out, bad := feed(t,
		event{Action: "output", Package: p, Test: "TestF", Output: "    f_test.go:3: boom\n"},
		event{Action: "fail", Package: p, Test: "TestF"},
		event{Action: "fail", Package: p},
		event{Action: "build-output", ImportPath: q + " [" + q + ".test]", Output: "q.go:1: syntax error\n"},
		event{Action: "fail", Package: q},
	)
	if !bad {
		t.Fatal("failures not reported as failure")
	}
	for _, want := range []string{"f_test.go:3: boom", "--- FAIL: package example/q", "q.go:1: syntax error", "0 passed, 2 failed, 0 skipped\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
}

// A test binary that dies mid-test (here the race detector's checkptr)
// ends no test: the running test's output is what says why.
func TestDeadBinaryShowsTheRunningTest(t *testing.T) {
	const p = "example/x"
	out, bad := feed(t,
		event{Action: "output", Package: p, Test: "TestDone", Output: "=== RUN   TestDone\n"},
		event{Action: "pass", Package: p, Test: "TestDone"},
		event{Action: "output", Package: p, Test: "TestDies", Output: "=== RUN   TestDies\n"},
		event{Action: "output", Package: p, Test: "TestDies", Output: "fatal error: checkptr: pointer arithmetic result points to invalid allocation\n"},
		event{Action: "output", Package: p, Output: "FAIL\t" + p + "\t0.6s\n"},
		event{Action: "fail", Package: p},
	)
	if !bad {
		t.Fatal("a dead test binary not reported as failure")
	}
	for _, want := range []string{"--- running when the test binary died: TestDies", "fatal error: checkptr", "1 passed, 1 failed, 0 skipped\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "died: TestDone") {
		t.Errorf("a test that passed is shown as running:\n%s", out)
	}
}
