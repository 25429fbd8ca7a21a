package config

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"regexp"
	"strings"
)

// The preprocessor: comments, includes, conditionals, definitions,
// replication and substitution, in keepalived's order, then the lexer.

// maxIncludeDepth and maxLines bound what one config can make the parser do,
// so that a hostile or broken file (macro bombs, ~SEQ over huge ranges)
// fails with an error instead of exhausting memory.
const (
	maxIncludeDepth = 32
	maxLines        = 1 << 20
	maxExpandDepth  = 32
	maxWork         = 4 << 20  // lines considered and substitutions made
	maxExpandedLine = 64 << 10 // bytes in one line after substitution
	maxBraceAlts    = 1024     // include patterns from one {a,b} expansion
)

// lexer runs keepalived's per-line pipeline (docs/keepalived.md#config-line-pipeline)
// over a file and its includes and produces statements.
type lexer struct {
	configID string
	fs       FS
	diags    *Diags
	defs     map[string][]string
	stack    []string // files being read, for include loop detection
	out      []stmt
	files    []string
	lines    int
	read     int64 // bytes read over all files, bounded by maxTotalRead
	work     int
	over     bool // the expansion budget is spent; reported once
	budget   int  // maxWork unless a test lowers it
	rng      *rand.Rand
}

var defRe = regexp.MustCompile(`^\$([A-Za-z_][A-Za-z0-9_]*)=(.*)$`)

func (lx *lexer) readFile(path string, from Pos) {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	for _, f := range lx.stack {
		if f == abs {
			lx.diags.errorf(from, "include loop: %s is already being read", path)
			return
		}
	}
	if len(lx.stack) >= maxIncludeDepth {
		lx.diags.errorf(from, "includes nested deeper than %d", maxIncludeDepth)
		return
	}
	data, err := lx.fs.ReadFile(path)
	if err == nil {
		// Bounds for every FS, not only the OS one.
		lx.read += int64(len(data))
		switch {
		case len(data) > maxFileSize:
			err = fmt.Errorf("is larger than %d MiB", maxFileSize>>20)
		case lx.read > maxTotalRead:
			err = fmt.Errorf("the config and its includes are larger than %d MiB together", maxTotalRead>>20)
		}
	}
	if err != nil {
		if len(lx.stack) == 0 {
			lx.diags.fatalf(Pos{File: path}, "cannot read config: %v", err)
		} else {
			lx.diags.errorf(from, "include %s: %v", path, err)
		}
		return
	}
	if sfs, ok := lx.fs.(statFS); ok {
		if fi, err := sfs.Stat(path); err == nil && fi.Mode()&0o111 != 0 {
			// keepalived skips an executable config file ("is not a regular
			// non-executable file - skipping"); halo reads it but says so,
			// because the two would run different configs.
			p := from
			if len(lx.stack) == 0 {
				p = Pos{File: path, Line: 1}
			}
			lx.diags.warnf(p, "configuration file %s is executable: keepalived 2.2.7 skips such a file, halo reads it (chmod a-x)", path)
		}
	}
	lx.stack = append(lx.stack, abs)
	defer func() { lx.stack = lx.stack[:len(lx.stack)-1] }()
	lx.files = append(lx.files, path)

	lines := strings.Split(string(data), "\n")
	var defName string
	var defLines []string
	var defPos Pos
	for i, text := range lines {
		pos := Pos{File: path, Line: i + 1}
		text = strings.TrimRight(text, "\r")
		if len(text) > maxLine {
			lx.diags.errorf(pos, "line too long (%d characters, at most %d)", len(text), maxLine)
			continue
		}
		if strings.IndexByte(text, 0) >= 0 {
			lx.diags.errorf(pos, "NUL byte in line")
			continue
		}
		if defName != "" { // continuation of a multi-line definition
			t, more := cutContinuation(stripComment(text))
			defLines = append(defLines, t)
			if !more {
				lx.defs[defName] = defLines
				defName = ""
			}
			continue
		}
		text, ok := lx.decomment(text, pos)
		if !ok || strings.TrimSpace(text) == "" {
			continue
		}
		// Includes are recognised before conditionals and substitution, as
		// keepalived does.
		if f := strings.Fields(text); len(f) > 0 && isInclude(f[0]) {
			lx.include(path, f, pos)
			continue
		}
		text, keep := lx.conditional(text)
		if !keep {
			continue
		}
		if m := defRe.FindStringSubmatch(strings.TrimSpace(text)); m != nil {
			v, more := cutContinuation(m[2])
			if more {
				defName, defLines, defPos = m[1], []string{v}, pos
			} else {
				lx.defs[m[1]] = []string{v}
			}
			continue
		}
		lx.emitLine(text, pos, 0)
	}
	if defName != "" {
		lx.diags.errorf(defPos, "definition of $%s continues past the end of the file", defName)
		lx.defs[defName] = defLines
	}
}

func cutContinuation(s string) (string, bool) {
	t := strings.TrimRight(s, " \t")
	if strings.HasSuffix(t, `\`) {
		return strings.TrimSuffix(t, `\`), true
	}
	return s, false
}

// conditional handles @id and @^id prefixes. The prefix is blanked rather
// than removed so that columns stay those of the file.
func (lx *lexer) conditional(s string) (string, bool) {
	t := strings.TrimLeft(s, " \t")
	if !strings.HasPrefix(t, "@") {
		return s, true
	}
	indent := len(s) - len(t)
	word, _, _ := strings.Cut(t, " ")
	word, _, _ = strings.Cut(word, "\t")
	neg := strings.HasPrefix(word, "@^")
	id := strings.TrimPrefix(strings.TrimPrefix(word, "@^"), "@")
	if (id == lx.configID) == neg {
		return "", false
	}
	return s[:indent] + strings.Repeat(" ", len(word)) + t[len(word):], true
}

// emitLine runs replication and substitution over a line, then splits the
// results into statements.
func (lx *lexer) emitLine(text string, pos Pos, depth int) {
	if !lx.spend(pos) {
		return
	}
	if depth > maxExpandDepth {
		lx.diags.errorf(pos, "macro expansion nested deeper than %d", maxExpandDepth)
		return
	}
	t := strings.TrimLeft(text, " \t")
	if strings.HasPrefix(t, "~SEQ") || strings.HasPrefix(t, "~LST") {
		lx.replicate(t, len(text)-len(t), pos, depth)
		return
	}
	expanded, changed := lx.substitute(text, pos, 0)
	if !changed {
		// Replication can leave a conditional at the start of what remains.
		if text, keep := lx.conditional(text); keep {
			lx.split(text, pos)
		}
		return
	}
	for _, l := range expanded {
		// The result is re-checked for comments and conditionals.
		l, ok := lx.decomment(l, pos)
		if !ok {
			continue
		}
		l, keep := lx.conditional(l)
		if !keep || strings.TrimSpace(l) == "" {
			continue
		}
		if strings.HasPrefix(strings.TrimSpace(l), "~SEQ") || strings.HasPrefix(strings.TrimSpace(l), "~LST") {
			lx.emitLine(l, pos, depth+1)
			continue
		}
		lx.split(l, pos)
	}
}

// spend charges one unit of the expansion budget that bounds what macros,
// ~SEQ and ~LST can make the parser do; it reports exhaustion once.
func (lx *lexer) spend(pos Pos) bool {
	if lx.over {
		return false
	}
	lx.work++
	if lx.work > lx.budget || lx.lines > maxLines {
		lx.over = true
		lx.diags.errorf(pos, "config expansion does more than %d steps (macro, ~SEQ or ~LST too large)", lx.budget)
		return false
	}
	return true
}
