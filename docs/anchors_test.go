// Package docs holds halo's documentation. Its one test keeps the pointers
// into it honest: every `docs/FILE.md#anchor` written anywhere in the
// repository (code comments, README, the docs themselves) must name a file
// that exists and a heading in it, and nothing may point at notes that live
// outside the repository.
package docs

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// slug turns a Markdown heading into the anchor GitHub gives it: lower case,
// punctuation other than '-' and '_' dropped, spaces to '-'.
func slug(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(h)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r > 127 && isLetter(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

func isLetter(r rune) bool { return strings.ToUpper(string(r)) != strings.ToLower(string(r)) }

var heading = regexp.MustCompile(`(?m)^#{1,6} +(.+?) *$`)

// anchors returns the anchors of one Markdown file (GitHub numbers repeats
// -1, -2, …; the docs avoid repeats, but count them anyway).
func anchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Headings inside fenced code blocks are not headings.
	var text strings.Builder
	fenced := false
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			fenced = !fenced
			continue
		}
		if !fenced {
			text.WriteString(l + "\n")
		}
	}
	out := map[string]bool{}
	seen := map[string]int{}
	for _, m := range heading.FindAllStringSubmatch(text.String(), -1) {
		s := slug(m[1])
		if n := seen[s]; n > 0 {
			out[s+"-"+strconv.Itoa(n)] = true
		} else {
			out[s] = true
		}
		seen[s]++
	}
	return out
}

var (
	// docs/keepalived.md#timers, as written in comments and README.
	repoRef = regexp.MustCompile(`docs/([A-Za-z0-9_.-]+\.md)#([A-Za-z0-9_-]+)`)
	// (keepalived.md#timers) and (#timers), as written inside docs/.
	localRef = regexp.MustCompile(`\]\(([A-Za-z0-9_.-]+\.md)?#([A-Za-z0-9_-]+)\)`)
	// The outside notes by name, or a bare "(§7.3)" that only made sense
	// next to them (RFC sections name their RFC). The names are written
	// with a class ([-]) so this guard does not itself read as a reference.
	external = regexp.MustCompile(`lab[-]notes|keepalived[-]semantics|shared[/]reference|\(§[0-9]`)
)

func TestEveryDocAnchorExists(t *testing.T) {
	cache := map[string]map[string]bool{}
	has := func(file, anchor string) bool {
		if _, ok := cache[file]; !ok {
			if _, err := os.Stat(file); err != nil {
				cache[file] = nil
			} else {
				cache[file] = anchors(t, file)
			}
		}
		return cache[file] != nil && cache[file][anchor]
	}
	refs := 0
	err := filepath.WalkDir("..", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "bin", "node_modules":
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(p) {
		case ".go", ".md", ".c", ".h", ".sh", ".conf", ".txt", ".yml", ".yaml", "":
		default:
			return nil
		}
		if strings.HasSuffix(p, "_bpfel.go") {
			return nil
		}
		// Stray binaries and logs (no extension, or large) are not prose.
		if info, err := d.Info(); err != nil || info.Size() > 512<<10 {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.IndexByte(b, 0) >= 0 {
			return nil
		}
		s := string(b)
		rel, _ := filepath.Rel("..", p)
		if rel != "docs/anchors_test.go" && !strings.HasPrefix(rel, "tests/mutants/") {
			for i, l := range strings.Split(s, "\n") {
				if external.MatchString(l) {
					t.Errorf("%s:%d: points outside the repository: %s", rel, i+1, strings.TrimSpace(l))
				}
			}
		}
		if rel == "docs/anchors_test.go" {
			return nil
		}
		for _, m := range repoRef.FindAllStringSubmatch(s, -1) {
			refs++
			if !has(m[1], m[2]) {
				t.Errorf("%s: docs/%s#%s: no such heading", rel, m[1], m[2])
			}
		}
		if strings.HasPrefix(rel, "docs/") && filepath.Ext(p) == ".md" {
			for _, m := range localRef.FindAllStringSubmatch(s, -1) {
				file := m[1]
				if file == "" {
					file = filepath.Base(p)
				}
				refs++
				if !has(file, m[2]) {
					t.Errorf("%s: %s#%s: no such heading", rel, file, m[2])
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if refs == 0 {
		t.Fatal("found no doc references at all: the walk is broken")
	}
	t.Logf("%d references checked", refs)
}

func TestSlug(t *testing.T) {
	for in, want := range map[string]string{
		"TC BPF: direct action and tcx": "tc-bpf-direct-action-and-tcx",
		"HTTP_GET and SSL_GET":          "http_get-and-ssl_get",
		"Priority 255 (owner)":          "priority-255-owner",
		"veth GRO":                      "veth-gro",
	} {
		if got := slug(in); got != want {
			t.Errorf("slug(%q) = %q, want %q", in, got, want)
		}
	}
}
