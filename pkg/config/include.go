package config

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// FS abstracts file access so tests can parse in-memory trees.
type FS interface {
	ReadFile(name string) ([]byte, error)
	Glob(pattern string) ([]string, error)
}

type osFS struct{}

func (osFS) ReadFile(name string) ([]byte, error) { return os.ReadFile(name) }

func (osFS) Glob(pattern string) ([]string, error) { return filepath.Glob(pattern) }

func isInclude(w string) bool {
	if !strings.HasPrefix(w, "include") {
		return false
	}
	for _, c := range w[len("include"):] {
		if !strings.ContainsRune("rmwba", c) {
			return false
		}
	}
	return true
}

func (lx *lexer) include(cur string, f []string, pos Pos) {
	if len(f) < 2 {
		lx.diags.errorf(pos, "%s needs a file name", f[0])
		return
	}
	mode := strings.TrimPrefix(f[0], "include")
	pattern := strings.Join(f[1:], " ")
	if !filepath.IsAbs(pattern) {
		pattern = filepath.Join(filepath.Dir(cur), pattern)
	}
	var matches []string
	alts := expandBraces(pattern)
	if len(alts) > maxBraceAlts {
		lx.diags.errorf(pos, "include %s expands to more than %d patterns", pattern, maxBraceAlts)
		return
	}
	for _, p := range alts {
		m, err := lx.fs.Glob(p)
		if err != nil {
			lx.diags.errorf(pos, "include %s: %v", p, err)
			continue
		}
		if len(m) == 0 && strings.ContainsAny(mode, "ba") {
			lx.diags.errorf(pos, "include %s matches no file", p)
		}
		matches = append(matches, m...)
	}
	sort.Strings(matches)
	if len(matches) == 0 && strings.ContainsAny(mode, "mwa") {
		lx.diags.errorf(pos, "include %s matches no file", pattern)
	}
	for _, m := range matches {
		lx.readFile(m, pos)
	}
}

// expandBraces expands csh-style {a,b} alternatives, which filepath.Glob
// does not know.
func expandBraces(p string) []string {
	open := strings.IndexByte(p, '{')
	if open < 0 {
		return []string{p}
	}
	depth := 0
	start := open + 1
	var alts []string
	for i := open; i < len(p); i++ {
		switch p[i] {
		case '{':
			depth++
		case ',':
			if depth == 1 {
				alts = append(alts, p[start:i])
				start = i + 1
			}
		case '}':
			depth--
			if depth == 0 {
				alts = append(alts, p[start:i])
				var out []string
				for _, a := range alts {
					out = append(out, expandBraces(p[:open]+a+p[i+1:])...)
					if len(out) > maxBraceAlts {
						return out
					}
				}
				return out
			}
		}
	}
	return []string{p}
}
