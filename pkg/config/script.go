package config

import (
	"errors"
	"strconv"
	"strings"
)

// shellWords splits s the way keepalived splits script lines: blanks
// separate words, "…" and '…' group (adjacent pieces join: ab"c d"e is one
// word), and backslash escapes apply outside single quotes.
func shellWords(s string) ([]string, error) {
	w, _, err := shellSplit(s)
	return w, err
}

// needsShell reports whether a command line uses shell syntax outside
// quotes (redirection, pipes, variables, globs, command lists), in which case
// it must run as `sh -c`; otherwise it is exec'd directly, without a shell.
func needsShell(s string) bool {
	_, meta, err := shellSplit(s)
	return meta || err != nil
}

const shellMeta = "|&;<>()$`*?[]~\n"

func shellSplit(s string) (words []string, meta bool, err error) {
	var cur strings.Builder
	inWord := false
	i := 0
	flush := func() {
		if inWord {
			words = append(words, cur.String())
			cur.Reset()
			inWord = false
		}
	}
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			flush()
			i++
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, meta, errors.New("unterminated single quote")
			}
			cur.WriteString(s[i+1 : i+1+end])
			inWord = true
			i += end + 2
		case c == '"':
			i++
			inWord = true
			closed := false
			for i < len(s) {
				if s[i] == '"' {
					closed = true
					i++
					break
				}
				if s[i] == '\\' && i+1 < len(s) {
					n := unescape(s[i+1:], &cur)
					i += 1 + n
					continue
				}
				cur.WriteByte(s[i])
				i++
			}
			if !closed {
				return nil, meta, errors.New("unterminated double quote")
			}
		case c == '\\' && i+1 < len(s):
			inWord = true
			i += 1 + unescape(s[i+1:], &cur)
		default:
			if strings.IndexByte(shellMeta, c) >= 0 {
				meta = true
			}
			cur.WriteByte(c)
			inWord = true
			i++
		}
	}
	flush()
	return words, meta, nil
}

// unescape writes the character for the escape at the start of s (after
// the backslash) and returns how many bytes of s it used.
func unescape(s string, w *strings.Builder) int {
	switch c := s[0]; c {
	case 'a':
		w.WriteByte('\a')
	case 'b':
		w.WriteByte('\b')
	case 'E':
		w.WriteByte(0x1b)
	case 'f':
		w.WriteByte('\f')
	case 'n':
		w.WriteByte('\n')
	case 'r':
		w.WriteByte('\r')
	case 't':
		w.WriteByte('\t')
	case 'v':
		w.WriteByte('\v')
	case 'x':
		n := 1
		for n < len(s) && n < 3 && isHex(s[n]) {
			n++
		}
		if n == 1 {
			w.WriteByte('x')
			return 1
		}
		v, _ := strconv.ParseUint(s[1:n], 16, 8)
		w.WriteByte(byte(v))
		return n
	case 'c':
		if len(s) > 1 {
			w.WriteByte(s[1] & 0x1f)
			return 2
		}
		w.WriteByte('c')
	default:
		if c >= '0' && c <= '7' {
			n := 0
			for n < len(s) && n < 3 && s[n] >= '0' && s[n] <= '7' {
				n++
			}
			v, _ := strconv.ParseUint(s[:n], 8, 8)
			w.WriteByte(byte(v))
			return n
		}
		w.WriteByte(c)
	}
	return 1
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}
