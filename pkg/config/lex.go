package config

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Pos is a place in a config file. Line and Col count from 1. For text
// produced by macro substitution, Col is the column in the expanded line.
type Pos struct {
	File string `json:"file"`
	Line int    `json:"line"`
	Col  int    `json:"col"`
}

func (p Pos) String() string {
	if p.Col > 0 {
		return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
	}
	return fmt.Sprintf("%s:%d", p.File, p.Line)
}

// Token is one word of a statement.
type Token struct {
	Text   string
	Pos    Pos
	Quoted bool
}

// stmt is one statement: the words of a line segment between braces, or a
// single brace. raw is the segment's text (after comments, conditionals and
// substitution), which script keywords re-tokenise shell-style.
type stmt struct {
	toks  []Token
	raw   string
	brace byte // '{' or '}' for a brace statement
	pos   Pos
}

// maxLine is keepalived's line buffer limit.
const maxLine = 1023

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

// lexer runs keepalived's per-line pipeline (keepalived-semantics.md §10.1)
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
	work     int
	over     bool // the expansion budget is spent; reported once
	budget   int  // maxWork unless a test lowers it
	rng      *rand.Rand
}

// FS abstracts file access so tests can parse in-memory trees.
type FS interface {
	ReadFile(name string) ([]byte, error)
	Glob(pattern string) ([]string, error)
}

type osFS struct{}

func (osFS) ReadFile(name string) ([]byte, error)  { return os.ReadFile(name) }
func (osFS) Glob(pattern string) ([]string, error) { return filepath.Glob(pattern) }

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
	if err != nil {
		if len(lx.stack) == 0 {
			lx.diags.fatalf(Pos{File: path}, "cannot read config: %v", err)
		} else {
			lx.diags.errorf(from, "include %s: %v", path, err)
		}
		return
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

// stripComment cuts the line at the first # or ! outside double quotes.
func stripComment(s string) string {
	inq := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			inq = !inq
		case '#', '!':
			if !inq {
				return s[:i]
			}
		}
	}
	return s
}

// decomment strips comments and reports an unterminated quote.
func (lx *lexer) decomment(s string, pos Pos) (string, bool) {
	s = stripComment(s)
	if strings.Count(s, `"`)%2 == 1 {
		pos.Col = strings.LastIndexByte(s, '"') + 1
		lx.diags.errorf(pos, "unterminated quoted string")
		return "", false
	}
	return s, true
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

// replicate expands one leading ~SEQ(...) or ~LST(...) and recurses for the
// rest of the line once per value, with the variables defined.
// indent is the width before t in the line; the replication prefix is
// blanked, not removed, so the replicated words keep their columns.
func (lx *lexer) replicate(t string, indent int, pos Pos, depth int) {
	open := strings.IndexByte(t, '(')
	if open < 0 {
		lx.diags.errorf(pos, "%s without (", t[:4])
		return
	}
	kind := t[:open]
	closeIdx := matchParen(t, open)
	if closeIdx < 0 {
		lx.diags.errorf(pos, "%s( is not closed", kind)
		return
	}
	inner := t[open+1 : closeIdx]
	rest := strings.Repeat(" ", indent+closeIdx+1) + t[closeIdx+1:]
	// Expand macros inside the parentheses first, so ${N} may set bounds.
	if exp, changed := lx.substitute(inner, pos, 0); changed {
		inner = strings.Join(exp, " ")
	}
	var sets []map[string]string
	switch kind {
	case "~SEQ", "~SEQx":
		args := splitTop(inner)
		if len(args) < 2 || len(args) > 4 {
			lx.diags.errorf(pos, "%s needs (var[, start[, step]], end)", kind)
			return
		}
		name := strings.TrimSpace(args[0])
		nums := make([]int64, 0, 3)
		for _, a := range args[1:] {
			n, err := strconv.ParseInt(strings.TrimSpace(a), 0, 64)
			if err != nil {
				lx.diags.errorf(pos, "%s: %q is not a number", kind, strings.TrimSpace(a))
				return
			}
			nums = append(nums, n)
		}
		var start, step, end int64
		switch len(nums) {
		case 1:
			end = nums[0]
			start = 1
			if end < 0 {
				start = -1
			}
		case 2:
			start, end = nums[0], nums[1]
		case 3:
			start, step, end = nums[0], nums[1], nums[2]
		}
		if step == 0 {
			step = 1
			if end < start {
				step = -1
			}
		}
		for v := start; (step > 0 && v <= end) || (step < 0 && v >= end); v += step {
			if !lx.spend(pos) {
				return
			}
			s := strconv.FormatInt(v, 10)
			if kind == "~SEQx" {
				s = strconv.FormatInt(v, 16)
			}
			sets = append(sets, map[string]string{name: s})
		}
	case "~LST":
		args := splitTop(inner)
		if len(args) < 2 {
			lx.diags.errorf(pos, "~LST needs (var, value, ...)")
			return
		}
		names := unbrace(args[0])
		for _, a := range args[1:] {
			vals := unbrace(a)
			if len(vals) != len(names) {
				lx.diags.errorf(pos, "~LST: %d values for %d variables", len(vals), len(names))
				return
			}
			m := map[string]string{}
			for i, n := range names {
				m[n] = vals[i]
			}
			sets = append(sets, m)
		}
	default:
		lx.diags.errorf(pos, "unknown replication %s", kind)
		return
	}
	for _, set := range sets {
		if lx.over {
			return
		}
		saved := map[string][]string{}
		for k, v := range set {
			if old, ok := lx.defs[k]; ok {
				saved[k] = old
			}
			lx.defs[k] = []string{v}
		}
		lx.emitLine(rest, pos, depth+1)
		for k := range set {
			if old, ok := saved[k]; ok {
				lx.defs[k] = old
			} else {
				delete(lx.defs, k)
			}
		}
	}
}

func matchParen(s string, open int) int {
	depth := 0
	for i := open; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// splitTop splits on commas that are not inside {...}.
func splitTop(s string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '{':
			depth++
		case '}':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

func unbrace(s string) []string {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
		var out []string
		for _, p := range strings.Split(s[1:len(s)-1], ",") {
			out = append(out, strings.TrimSpace(p))
		}
		return out
	}
	return []string{s}
}

var (
	bracedRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)((?:\s+[^}]*)?)\}`)
	bareRef   = regexp.MustCompile(`\$([A-Za-z_][A-Za-z0-9_]*)(\s|$)`)
)

// substitute expands $NAME and ${NAME} (recursively: the replacement is
// scanned again) and the built-ins. Undefined names stay as they are, so a
// literal $ in a script survives. A multi-line definition splits the line:
// what precedes it joins its first line and what follows joins its last.
// Every replacement is charged to the expansion budget, so a self-referring
// definition ends in an error rather than a hang.
func (lx *lexer) substitute(s string, pos Pos, depth int) ([]string, bool) {
	if !strings.Contains(s, "$") {
		return []string{s}, false
	}
	if depth > maxExpandDepth {
		lx.diags.errorf(pos, "multi-line macros nested deeper than %d", maxExpandDepth)
		return []string{s}, false
	}
	changed := false
	for steps := 0; ; steps++ {
		start, end, val, ok := lx.firstRef(s, pos)
		if !ok {
			return []string{s}, changed
		}
		if steps >= 1000 || !lx.spend(pos) {
			if !lx.over {
				lx.diags.errorf(pos, "macro expansion does not end (recursive definition?)")
			}
			return []string{s}, false
		}
		changed = true
		before, after := s[:start], s[end:]
		if len(val) == 1 {
			s = before + val[0] + after
			if len(s) > maxExpandedLine {
				lx.diags.errorf(pos, "macro expansion makes a line longer than %d bytes", maxExpandedLine)
				return []string{s[:maxExpandedLine]}, false
			}
			continue
		}
		lines := append([]string{before + val[0]}, val[1:len(val)-1]...)
		lines = append(lines, val[len(val)-1]+after)
		var out []string
		for _, l := range lines {
			exp, _ := lx.substitute(l, pos, depth+1)
			out = append(out, exp...)
			if lx.over {
				return []string{}, true
			}
		}
		return out, true
	}
}

// firstRef finds the leftmost reference to a defined name or built-in.
func (lx *lexer) firstRef(s string, pos Pos) (start, end int, val []string, ok bool) {
	start = -1
	for _, m := range bracedRef.FindAllStringSubmatchIndex(s, -1) {
		if v, found := lx.lookup(s[m[2]:m[3]], s[m[4]:m[5]], pos); found {
			start, end, val = m[0], m[1], v
			break
		}
	}
	for _, m := range bareRef.FindAllStringSubmatchIndex(s, -1) {
		if start >= 0 && m[0] > start {
			break
		}
		if v, found := lx.lookup(s[m[2]:m[3]], "", pos); found {
			start, end, val = m[0], m[3], v
			break
		}
	}
	return start, end, val, start >= 0
}

func (lx *lexer) lookup(name, arg string, pos Pos) ([]string, bool) {
	switch name {
	case "_PWD":
		return []string{filepath.Dir(pos.File)}, true
	case "_INSTANCE":
		return []string{lx.configID}, true
	case "_HASH":
		return []string{"#"}, true
	case "_BANG":
		return []string{"!"}, true
	case "_RANDOM":
		lo, hi := 0, 32767
		f := strings.Fields(arg)
		if len(f) > 0 {
			lo, _ = strconv.Atoi(f[0])
		}
		if len(f) > 1 {
			hi, _ = strconv.Atoi(f[1])
		}
		if hi < lo || hi-lo > 1<<30 {
			hi = lo
		}
		return []string{strconv.Itoa(lo + lx.rng.IntN(hi-lo+1))}, true
	}
	v, ok := lx.defs[name]
	if ok && len(v) == 0 {
		v = []string{""}
	}
	return v, ok
}

// split breaks a processed line into statements at braces outside quotes and
// tokenises each segment.
func (lx *lexer) split(line string, pos Pos) {
	lx.lines++
	if lx.over || lx.lines > maxLines {
		lx.spend(pos)
		return
	}
	inq := false
	start := 0
	flush := func(end int) {
		seg := line[start:end]
		if strings.TrimSpace(seg) == "" {
			return
		}
		toks := tokenize(seg, Pos{File: pos.File, Line: pos.Line, Col: start + 1})
		if len(toks) == 0 {
			return
		}
		lx.out = append(lx.out, stmt{toks: toks, raw: strings.TrimSpace(seg), pos: toks[0].Pos})
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		if c == '"' {
			inq = !inq
			continue
		}
		if inq || (c != '{' && c != '}') {
			continue
		}
		flush(i)
		lx.out = append(lx.out, stmt{brace: c, pos: Pos{File: pos.File, Line: pos.Line, Col: i + 1}})
		start = i + 1
	}
	flush(len(line))
}

// tokenize splits on blanks. A token starting with " runs to the next ",
// without escapes; a " inside a bare word ends the word. base is the position
// of seg[0].
func tokenize(seg string, base Pos) []Token {
	var toks []Token
	i := 0
	for i < len(seg) {
		c := seg[i]
		if c == ' ' || c == '\t' {
			i++
			continue
		}
		p := base
		p.Col += i
		if c == '"' {
			end := strings.IndexByte(seg[i+1:], '"')
			if end < 0 {
				toks = append(toks, Token{Text: seg[i+1:], Pos: p, Quoted: true})
				break
			}
			toks = append(toks, Token{Text: seg[i+1 : i+1+end], Pos: p, Quoted: true})
			i += end + 2
			continue
		}
		j := i
		for j < len(seg) && seg[j] != ' ' && seg[j] != '\t' && seg[j] != '"' {
			j++
		}
		toks = append(toks, Token{Text: seg[i:j], Pos: p})
		i = j
	}
	return toks
}
