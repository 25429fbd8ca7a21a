package main

import (
	"bufio"
	"fmt"
	"io"
	"os/exec"
	"path"
	"sort"
	"strings"
)

// modDeps parses modules.dep ("kernel/x/a.ko: kernel/y/b.ko ...") into a
// map from module name (a, with '-' as '_') to its file and dependencies.
type modDeps struct {
	file map[string]string   // name -> path relative to lib/modules/KV
	deps map[string][]string // path -> dependency paths
}

func modName(p string) string {
	b := path.Base(p)
	for _, ext := range []string{".ko.xz", ".ko.zst", ".ko.gz", ".ko"} {
		b = strings.TrimSuffix(b, ext)
	}
	return strings.ReplaceAll(b, "-", "_")
}

func parseModulesDep(r io.Reader) (*modDeps, error) {
	m := &modDeps{file: map[string]string{}, deps: map[string][]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		mod, deps, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("modules.dep: malformed line %q", line)
		}
		m.file[modName(mod)] = mod
		m.deps[mod] = strings.Fields(deps)
	}
	return m, sc.Err()
}

// closure returns the files of the named modules and everything they
// depend on, sorted. A module that is not in modules.dep is an error: it
// may be built in (see builtin) or missing from this kernel.
func (m *modDeps) closure(names []string, builtin map[string]bool) ([]string, error) {
	seen := map[string]bool{}
	var walk func(p string)
	walk = func(p string) {
		if seen[p] {
			return
		}
		seen[p] = true
		for _, d := range m.deps[p] {
			walk(d)
		}
	}
	var missing []string
	for _, n := range names {
		n = strings.ReplaceAll(n, "-", "_")
		p, ok := m.file[n]
		if !ok {
			if !builtin[n] {
				missing = append(missing, n)
			}
			continue
		}
		walk(p)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("modules not in this kernel: %s", strings.Join(missing, " "))
	}
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}

// parseBuiltin reads modules.builtin (one path per line) into names.
func parseBuiltin(r io.Reader) map[string]bool {
	out := map[string]bool{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out[modName(l)] = true
		}
	}
	return out
}

// parseLdd extracts the library paths from ldd's output, the dynamic loader
// included; a static binary gives none.
func parseLdd(out string) []string {
	var libs []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			libs = append(libs, f[2])
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			libs = append(libs, f[0])
		}
	}
	return libs
}

// sharedLibs runs ldd on a host binary.
func sharedLibs(bin string) ([]string, error) {
	out, err := exec.Command("ldd", bin).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "not a dynamic executable") {
			return nil, nil
		}
		return nil, fmt.Errorf("ldd %s: %v: %s", bin, err, out)
	}
	return parseLdd(string(out)), nil
}
