// Command mutants checks that halo's tests catch deliberately planted bugs
// (`make mutants`, as root). It copies the working tree to a temporary
// directory, runs the selected tests once unmutated (they must pass, and
// none may skip), then plants each mutation of tests/mutants/mutants.txt in
// turn, runs the tests that mutant names, and restores the file. A mutant is
// caught when a test fails. A snippet that no longer matches the code
// exactly once, or a mutant that does not compile, is an error: the list
// must be kept in step with the code. The report goes to docs/mutants.md.
//
// By default each mutant runs only the tests its entry names, which keeps a
// run to a few minutes. -full runs every test of the module against each
// mutant instead (as root this takes as long as `make test` per mutant).
package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

type edit struct {
	file     string
	old, new string
}

type test struct{ pkg, run string }

type mutant struct {
	name  string
	what  string
	line  int
	tests []test
	edits []edit
}

type result struct {
	m       *mutant
	verdict string // caught, SURVIVED, STALE, BROKEN, ERROR
	detail  string
	took    time.Duration
}

func main() {
	list := flag.String("list", "tests/mutants/mutants.txt", "the mutation list")
	report := flag.String("report", "docs/mutants.md", "where to write the report (relative to the repository)")
	only := flag.String("only", "", "run only mutants whose name matches this regular expression")
	full := flag.Bool("full", false, "run every test of the module against each mutant, not only the named ones")
	timeout := flag.Duration("timeout", 10*time.Minute, "bound on one go test run")
	keep := flag.Bool("keep", false, "keep the temporary copy")
	rev := flag.String("rev", "", "test this commit (git archive) instead of the working tree")
	checkOnly := flag.Bool("check", false, "only check that every snippet matches its file exactly once")
	flag.Parse()

	root, err := os.Getwd()
	check(err)
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		fatal("run from the repository root (make mutants)")
	}
	listPath := *list
	if !filepath.IsAbs(listPath) {
		listPath = filepath.Join(root, listPath)
	}
	ms, err := parse(listPath)
	check(err)
	if *only != "" {
		re := regexp.MustCompile(*only)
		var keepMs []*mutant
		for _, m := range ms {
			if re.MatchString(m.name) {
				keepMs = append(keepMs, m)
			}
		}
		ms = keepMs
	}
	if len(ms) == 0 {
		fatal("no mutants selected")
	}
	if *checkOnly {
		stale := 0
		for _, m := range ms {
			for _, e := range m.edits {
				b, err := os.ReadFile(filepath.Join(root, e.file))
				if n := bytes.Count(b, []byte(e.old)); err != nil || n != 1 {
					logf("%s: %s: snippet matches %d times (%v)", m.name, e.file, n, err)
					stale++
				}
			}
		}
		if stale > 0 {
			fatal("%d stale snippets", stale)
		}
		logf("all %d mutants' snippets match the working tree", len(ms))
		return
	}
	if os.Geteuid() != 0 {
		fatal("the wiring tests need root (network namespaces, XDP): run `make mutants` as root")
	}

	// The label names what is copied now: the tree may move on while the
	// mutants run.
	label := "working tree of " + describe(root, "--dirty")
	if *rev != "" {
		label = "commit " + describe(root, *rev)
	}
	tmp, err := os.MkdirTemp("", "halo-mutants-")
	check(err)
	if !*keep {
		defer os.RemoveAll(tmp)
	}
	if *rev != "" {
		logf("extracting %s to %s", *rev, tmp)
		check(extract(root, *rev, tmp))
	} else {
		logf("copying the working tree to %s", tmp)
		check(copyTree(root, tmp))
	}

	start := time.Now()
	// Baseline: every selected test passes, and runs, on the unmutated copy.
	// One run per package; each mutant's selections are then judged from
	// that run's per-test results. A mutant whose tests fail (or skip)
	// unmutated is not planted: its verdict says so and the run fails.
	broken := map[string]string{} // "pkg run" -> why
	if !*full {
		for _, tt := range union(ms) {
			logf("baseline: go test %s -run '%s'", tt.pkg, tt.run)
			out, _ := goTest(tmp, tt.pkg, tt.run, *timeout)
			res := testResults(out)
			for _, m := range ms {
				for _, sel := range m.tests {
					if sel.pkg != tt.pkg {
						continue
					}
					if why := judge(res, sel.run); why != "" {
						broken[sel.pkg+" "+sel.run] = why
					}
				}
			}
			if len(res) == 0 {
				fmt.Fprint(os.Stderr, tail(out, 40))
				fatal("baseline run of %s reported no tests", tt.pkg)
			}
		}
	}

	var results []result
	for _, m := range ms {
		var r result
		for _, sel := range m.tests {
			if why, bad := broken[sel.pkg+" "+sel.run]; bad {
				r = result{m: m, verdict: "BASELINE FAILS", detail: fmt.Sprintf("%s -run '%s' %s without the mutant", sel.pkg, sel.run, why)}
			}
		}
		if r.m == nil {
			r = runMutant(tmp, m, *full, *timeout)
		}
		logf("%-34s %s (%v) %s", m.name, r.verdict, r.took.Round(time.Second), r.detail)
		results = append(results, r)
	}
	rep := render(results, *full, time.Since(start), label)
	out := *report
	if !filepath.IsAbs(out) {
		out = filepath.Join(root, out)
	}
	check(os.WriteFile(out, []byte(rep), 0o644))
	logf("report written to %s", *report)
	bad := 0
	for _, r := range results {
		if r.verdict != "caught" {
			bad++
		}
	}
	if bad > 0 {
		fatal("%d of %d mutants not caught (or the list is out of step with the code); see %s", bad, len(results), *report)
	}
	logf("all %d mutants caught", len(results))
}

func runMutant(dir string, m *mutant, full bool, timeout time.Duration) (r result) {
	r.m = m
	start := time.Now()
	defer func() { r.took = time.Since(start) }()
	saved := map[string][]byte{}
	defer func() {
		for f, b := range saved {
			if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
				fatal("restoring %s: %v", f, err)
			}
		}
	}()
	for _, e := range m.edits {
		p := filepath.Join(dir, e.file)
		if _, ok := saved[e.file]; !ok {
			b, err := os.ReadFile(p)
			if err != nil {
				r.verdict, r.detail = "STALE", fmt.Sprintf("%s: %v", e.file, err)
				return
			}
			saved[e.file] = b
		}
		cur, _ := os.ReadFile(p)
		if n := bytes.Count(cur, []byte(e.old)); n != 1 {
			r.verdict, r.detail = "STALE", fmt.Sprintf("%s: the original snippet matches %d times, want 1", e.file, n)
			return
		}
		if err := os.WriteFile(p, bytes.Replace(cur, []byte(e.old), []byte(e.new), 1), 0o644); err != nil {
			fatal("%v", err)
		}
	}
	// A mutant of the BPF C is compiled into the object the Go package
	// embeds (bpf2go; clang needed), which is restored afterwards too.
	if bpfEdit(m) {
		for _, f := range []string{"pkg/dataplane/xdp/lb_bpfel.go", "pkg/dataplane/xdp/lb_bpfel.o"} {
			b, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				fatal("%v", err)
			}
			saved[f] = b
		}
		if out, err := run(dir, 5*time.Minute, "go", "generate", "./pkg/dataplane/xdp"); err != nil {
			r.verdict, r.detail = "BROKEN", "the BPF object does not build: "+firstLine(tail(out, 5))
			return
		}
	}
	// vet compiles the mutated packages: a mutant that does not build (or
	// that vet rejects) is a fault of the list, not a catch.
	if out, err := run(dir, 5*time.Minute, "go", append([]string{"vet"}, pkgsOf(m)...)...); err != nil {
		r.verdict, r.detail = "BROKEN", "does not compile or vet: "+firstLine(out)
		return
	}
	tests := m.tests
	if full {
		tests = []test{{"./...", ""}}
	}
	for _, tt := range tests {
		out, err := goTest(dir, tt.pkg, tt.run, timeout)
		if err == nil {
			continue
		}
		if fails := failures(out); len(fails) > 0 {
			r.verdict, r.detail = "caught", "by "+strings.Join(fails, ", ")
			return
		}
		r.verdict, r.detail = "ERROR", "go test failed without a failing test: "+firstLine(tail(out, 5))
		return
	}
	r.verdict = "SURVIVED"
	return
}

// bpfEdit says whether m edits the BPF C sources.
func bpfEdit(m *mutant) bool {
	for _, e := range m.edits {
		if strings.HasPrefix(e.file, "bpf/") {
			return true
		}
	}
	return false
}

func goTest(dir, pkg, runRe string, timeout time.Duration) (string, error) {
	args := []string{"test", "-count=1", "-v", "-timeout", timeout.String()}
	if runRe != "" {
		args = append(args, "-run", runRe)
	}
	args = append(args, pkg)
	return run(dir, timeout+time.Minute, "go", args...)
}

func run(dir string, d time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	env := []string{"CGO_ENABLED=0"}
	for _, kv := range os.Environ() {
		// A leftover HALO_UNPRIVILEGED would turn every test into a skip.
		if !strings.HasPrefix(kv, "HALO_UNPRIVILEGED=") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

var failLine = regexp.MustCompile(`(?m)^\s*--- FAIL: (\S+)`)

var resultLine = regexp.MustCompile(`(?m)^\s*--- (PASS|FAIL|SKIP): (\S+)`)

// testResults maps each test and subtest name of a go test -v run to
// PASS, FAIL or SKIP.
func testResults(out string) map[string]string {
	res := map[string]string{}
	for _, m := range resultLine.FindAllStringSubmatch(out, -1) {
		res[m[2]] = m[1]
	}
	return res
}

// judge says why a selection (a -run pattern) did not pass cleanly in a
// run's results, or "" when it did: at least one selected test passed and
// none failed or skipped. Patterns match name elements as go test does.
func judge(res map[string]string, run string) string {
	pats := strings.Split(run, "/")
	var res2 []*regexp.Regexp
	for _, p := range pats {
		re, err := regexp.Compile(p)
		if err != nil {
			return "has a bad pattern"
		}
		res2 = append(res2, re)
	}
	pass := 0
	for name, r := range res {
		els := strings.Split(name, "/")
		if len(els) < len(res2) {
			continue
		}
		match := true
		for i, re := range res2 {
			if !re.MatchString(els[i]) {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		switch r {
		case "FAIL":
			return "fails (" + name + ")"
		case "SKIP":
			return "skips (" + name + ")"
		}
		pass++
	}
	if pass == 0 {
		return "ran no test"
	}
	return ""
}

func failures(out string) []string {
	var fs []string
	for _, m := range failLine.FindAllStringSubmatch(out, -1) {
		fs = append(fs, m[1])
	}
	return fs
}

func pkgsOf(m *mutant) []string {
	seen := map[string]bool{}
	var out []string
	for _, e := range m.edits {
		p := "./" + filepath.Dir(e.file)
		if strings.HasPrefix(e.file, "bpf/") {
			p = "./pkg/dataplane/xdp" // the package that embeds the object
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// union merges the test selections per package into one run each.
func union(ms []*mutant) []test {
	byPkg := map[string][]string{}
	for _, m := range ms {
		for _, t := range m.tests {
			byPkg[t.pkg] = append(byPkg[t.pkg], t.run)
		}
	}
	var out []test
	for pkg, runs := range byPkg {
		sort.Strings(runs)
		var top []string
		seen := map[string]bool{}
		for _, r := range runs {
			// Subtest selectors (A/b) run whole at the top level here.
			r = strings.SplitN(r, "/", 2)[0]
			if !seen[r] {
				seen[r] = true
				top = append(top, r)
			}
		}
		out = append(out, test{pkg, strings.Join(top, "|")})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].pkg < out[j].pkg })
	return out
}

// parse reads the mutation list:
//
//	=== name
//	what: one line saying which behaviour the bug breaks
//	tests: ./pkg/path  -run-regexp        (one or more)
//	--- path/to/file.go                   (one or more edits)
//	<<<<
//	exact original lines
//	====
//	replacement lines
//	>>>>
func parse(path string) ([]*mutant, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ms []*mutant
	var cur *mutant
	var e *edit
	state := "" // "", "old", "new"
	var buf []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n := 0
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%s:%d: %s", path, n, fmt.Sprintf(format, a...))
	}
	for sc.Scan() {
		n++
		l := sc.Text()
		switch state {
		case "old":
			if l == "====" {
				e.old, buf, state = strings.Join(buf, "\n"), nil, "new"
			} else {
				buf = append(buf, l)
			}
			continue
		case "new":
			if l == ">>>>" {
				e.new, buf, state = strings.Join(buf, "\n"), nil, ""
				if e.old == "" || e.old == e.new {
					return nil, bad("edit of %s: empty or unchanged snippet", e.file)
				}
				cur.edits = append(cur.edits, *e)
				e = nil
			} else {
				buf = append(buf, l)
			}
			continue
		}
		switch {
		case strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#"):
		case strings.HasPrefix(l, "=== "):
			cur = &mutant{name: strings.TrimSpace(l[4:]), line: n}
			ms = append(ms, cur)
		case cur == nil:
			return nil, bad("expected '=== name'")
		case strings.HasPrefix(l, "what:"):
			cur.what = strings.TrimSpace(l[5:])
		case strings.HasPrefix(l, "tests:"):
			f := strings.Fields(l[6:])
			if len(f) != 2 {
				return nil, bad("tests: want PACKAGE RUN-REGEXP")
			}
			cur.tests = append(cur.tests, test{f[0], f[1]})
		case strings.HasPrefix(l, "--- "):
			e = &edit{file: strings.TrimSpace(l[4:])}
		case l == "<<<<" && e != nil:
			state = "old"
		default:
			return nil, bad("unexpected line %q", l)
		}
	}
	if state != "" {
		return nil, bad("unterminated snippet")
	}
	names := map[string]bool{}
	for _, m := range ms {
		if names[m.name] {
			return nil, fmt.Errorf("%s:%d: duplicate mutant %s", path, m.line, m.name)
		}
		names[m.name] = true
		if len(m.edits) == 0 || len(m.tests) == 0 || m.what == "" {
			return nil, fmt.Errorf("%s:%d: mutant %s needs what:, tests: and at least one edit", path, m.line, m.name)
		}
	}
	return ms, sc.Err()
}

// copyTree copies the files git knows of (tracked and untracked but not
// ignored) as they are in the working tree.
func copyTree(src, dst string) error {
	out, err := exec.Command("git", "-C", src, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		return fmt.Errorf("git ls-files: %w", err)
	}
	for _, rel := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if rel == "" {
			continue
		}
		in, err := os.Open(filepath.Join(src, rel))
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted in the working tree
		}
		if err != nil {
			return err
		}
		st, _ := in.Stat()
		if st.IsDir() {
			in.Close()
			continue
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dst, rel)), 0o755); err != nil {
			in.Close()
			return err
		}
		o, err := os.OpenFile(filepath.Join(dst, rel), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, st.Mode().Perm())
		if err == nil {
			_, err = io.Copy(o, in)
			o.Close()
		}
		in.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// extract writes the tree of commit rev into dst.
func extract(root, rev, dst string) error {
	cmd := exec.Command("git", "-C", root, "archive", "--format=tar", rev)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	tr := tar.NewReader(out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		p := filepath.Join(dst, filepath.Clean("/"+h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode).Perm())
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			f.Close()
			if err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := os.Symlink(h.Linkname, p); err != nil {
				return err
			}
		}
	}
	return cmd.Wait()
}

func describe(root, arg string) string {
	out, err := exec.Command("git", "-C", root, "describe", "--always", arg).Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}

func render(rs []result, full bool, took time.Duration, tree string) string {
	var b strings.Builder
	caught := 0
	for _, r := range rs {
		if r.verdict == "caught" {
			caught++
		}
	}
	fmt.Fprintf(&b, "# Mutation check\n\n")
	fmt.Fprintf(&b, "`make mutants` plants each bug listed in `tests/mutants/mutants.txt` in a temporary copy of the tree, "+
		"runs the tests the entry names and reports whether one of them failed. Every mutant must be caught. "+
		"The list covers the wiring between halo's parts (see [ARCHITECTURE.md](ARCHITECTURE.md)); "+
		"the tests are in `tests/e2e/wiring_*_test.go`.\n\n")
	fmt.Fprintf(&b, "Last run: %s, %s, %s; **%d of %d caught**.\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		tree, map[bool]string{true: "full suite per mutant", false: "per-mutant test selection"}[full],
		caught, len(rs))
	fmt.Fprintf(&b, "| Mutant | Planted in | What breaks | Result | Time |\n|---|---|---|---|---|\n")
	for _, r := range rs {
		var files []string
		for _, e := range r.m.edits {
			files = append(files, "`"+e.file+"`")
		}
		res := r.verdict
		if r.detail != "" {
			res += ": " + strings.ReplaceAll(r.detail, "|", "\\|")
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %v |\n", r.m.name, strings.Join(files, ", "), r.m.what, res,
			r.took.Round(time.Second))
	}
	fmt.Fprintf(&b, "\nTotal time %v.\n\n", took.Round(time.Second))
	fmt.Fprintf(&b, "## Running it\n\n"+
		"```\nmake mutants                                   # as root; each mutant against the tests it names\n"+
		"go run ./tests/mutants -only 'track'           # some mutants\n"+
		"go run ./tests/mutants -full                   # each mutant against every test of the module (slow)\n"+
		"go run ./tests/mutants -rev HEAD               # a commit instead of the working tree\n```\n\n"+
		"Before planting anything the runner checks that the named tests pass, without skips, on the unmutated copy. "+
		"A snippet that no longer matches the code exactly once is reported STALE and fails the run: when you change "+
		"code a mutant touches, update its snippet in `tests/mutants/mutants.txt` in the same commit. "+
		"A mutant that does not compile is BROKEN. A new wiring path gets a test and a mutant that the test catches.\n")
	return b.String()
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func tail(s string, n int) string {
	ls := strings.Split(s, "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "mutants: "+format+"\n", a...)
}

func fatal(format string, a ...any) {
	logf(format, a...)
	os.Exit(1)
}

func check(err error) {
	if err != nil {
		fatal("%v", err)
	}
}
