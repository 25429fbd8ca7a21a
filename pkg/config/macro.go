package config

import (
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// Macros: $NAME definitions, their substitution and the built-ins, and the
// ~SEQ / ~LST replication of a line.

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
