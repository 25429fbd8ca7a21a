// Command testsum reads `go test -json` on stdin and prints what matters: each
// package's result, every failing test with its output, every skipped test
// with its reason, and a closing "N passed, N failed, N skipped" line. The
// full verbose text (what `go test -v` would have printed) goes to the file
// named by -log. It exits 1 when anything failed. scripts/gotest runs it.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Time    time.Time
	Action  string
	Package string
	// ImportPath names the package of a build-output event
	// ("pkg [pkg.test]").
	ImportPath string
	Test       string
	Elapsed    float64
	Output     string
}

type key struct{ pkg, test string }

type summary struct {
	out                    io.Writer
	output                 map[key][]string
	passed, failed, skipRn int
	failures               []key
	skips                  []key
	pkgFailed              []string
	ended                  map[key]bool // tests with a pass, fail or skip
}

func main() {
	logPath := flag.String("log", "test.log", "where the verbose text goes")
	flag.Parse()
	logf, err := os.Create(*logPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsum:", err)
		os.Exit(2)
	}
	s := &summary{out: os.Stdout, output: map[key][]string{}, ended: map[key]bool{}}
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			// Not an event: the go command's own messages (build
			// errors before Go 1.24, vet). Keep and show them.
			fmt.Fprintf(logf, "%s\n", line)
			fmt.Fprintf(s.out, "%s\n", line)
			s.output[key{}] = append(s.output[key{}], string(line)+"\n")
			continue
		}
		if e.Action == "output" || e.Action == "build-output" {
			io.WriteString(logf, e.Output)
		}
		s.add(e)
	}
	logf.Close()
	if s.report() {
		os.Exit(1)
	}
}

func (s *summary) add(e event) {
	k := key{e.Package, e.Test}
	if e.Package == "" && e.ImportPath != "" {
		k.pkg = strings.Fields(e.ImportPath)[0]
	}
	switch e.Action {
	case "output", "build-output":
		s.output[k] = append(s.output[k], e.Output)
		if e.Test == "" && e.Action == "output" && isPackageLine(e.Output) {
			io.WriteString(s.out, e.Output)
		}
		if e.Action == "build-output" {
			io.WriteString(s.out, e.Output)
		}
	case "pass":
		if e.Test != "" {
			s.passed++
			s.ended[k] = true
		}
	case "fail":
		if e.Test != "" {
			s.failed++
			s.failures = append(s.failures, k)
			s.ended[k] = true
		} else {
			s.pkgFailed = append(s.pkgFailed, e.Package)
		}
	case "skip":
		if e.Test != "" {
			s.skipRn++
			s.skips = append(s.skips, k)
			s.ended[k] = true
		}
	}
}

// isPackageLine is go test's one-line result per package.
func isPackageLine(l string) bool {
	return strings.HasPrefix(l, "ok  \t") || strings.HasPrefix(l, "FAIL\t") || strings.HasPrefix(l, "?   \t") ||
		strings.HasPrefix(l, "panic:")
}

// reason is what a skipped test logged, without go test's own framing.
func (s *summary) reason(k key) string {
	var lines []string
	for _, l := range s.output[k] {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- ") {
			continue
		}
		lines = append(lines, t)
	}
	if len(lines) == 0 {
		return "(no reason given)"
	}
	return strings.Join(lines, " / ")
}

// report prints the details and the closing line; true means failure.
func (s *summary) report() bool {
	bad := s.failed > 0 || len(s.pkgFailed) > 0
	if bad {
		fmt.Fprintln(s.out, "---- failure details ----")
		for _, k := range s.failures {
			if hasFailedChild(s.failures, k) {
				continue // the subtest's own output says it
			}
			fmt.Fprintf(s.out, "--- FAIL: %s (%s)\n", k.test, k.pkg)
			fmt.Fprint(s.out, tail(s.output[k], 200))
			if s.reason(k) == "(no reason given)" {
				// Output test2json could not attribute to the test
				// (interleaved writes) is in the package's lines.
				fmt.Fprint(s.out, tail(s.output[key{k.pkg, ""}], 50))
			}
		}
		for _, p := range s.pkgFailed {
			if pkgHasFailedTest(s.failures, p) {
				continue
			}
			fmt.Fprintf(s.out, "--- FAIL: package %s\n", p)
			// A test binary that died (fatal error, os.Exit, a signal)
			// ends no test: the one running holds the why.
			for _, k := range s.unended(p) {
				fmt.Fprintf(s.out, "--- running when the test binary died: %s\n", k.test)
				fmt.Fprint(s.out, tail(s.output[k], 200))
			}
			fmt.Fprint(s.out, tail(s.output[key{p, ""}], 200))
		}
	}
	if len(s.skips) > 0 {
		fmt.Fprintln(s.out, "---- skipped ----")
		sort.SliceStable(s.skips, func(i, j int) bool { return s.skips[i].pkg < s.skips[j].pkg })
		for _, k := range s.skips {
			fmt.Fprintf(s.out, "SKIP %s %s: %s\n", strings.TrimPrefix(k.pkg, "github.com/halo-lb/halo/"), k.test, s.reason(k))
		}
	}
	failed := s.failed
	for _, p := range s.pkgFailed {
		if !pkgHasFailedTest(s.failures, p) {
			failed++ // build failure, panic or TestMain exit
		}
	}
	fmt.Fprintf(s.out, "%d passed, %d failed, %d skipped\n", s.passed, failed, s.skipRn)
	return bad
}

// unended lists package p's tests that started but never ended, by name.
func (s *summary) unended(p string) []key {
	var out []key
	for k := range s.output {
		if k.pkg == p && k.test != "" && !s.ended[k] {
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].test < out[j].test })
	return out
}

func hasFailedChild(fails []key, k key) bool {
	for _, f := range fails {
		if f.pkg == k.pkg && strings.HasPrefix(f.test, k.test+"/") {
			return true
		}
	}
	return false
}

func pkgHasFailedTest(fails []key, pkg string) bool {
	for _, f := range fails {
		if f.pkg == pkg {
			return true
		}
	}
	return false
}

func tail(lines []string, n int) string {
	if len(lines) > n {
		lines = append([]string{"[...]\n"}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "")
}
