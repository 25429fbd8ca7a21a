package config

import (
	"fmt"
	"strings"
)

// The lexer: a processed line becomes statements (words and braces) with
// their positions.

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
