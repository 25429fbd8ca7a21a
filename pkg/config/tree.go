package config

import "strings"

// node is a keyword with its arguments and, for a block, its children.
type node struct {
	key      Token
	args     []Token
	raw      string // the statement text, for script keywords
	block    bool
	children []*node
	end      Pos // position of the closing brace
}

func (n *node) pos() Pos { return n.key.Pos }

// argText joins the arguments as keepalived would see them on one line.
func (n *node) argText() string {
	var parts []string
	for _, a := range n.args {
		parts = append(parts, a.Text)
	}
	return strings.Join(parts, " ")
}

// buildTree turns statements into a tree. A statement followed by "{"
// (on the same or a later line) opens a block. Unbalanced braces are
// reported; an unclosed block is closed at the end of input.
func buildTree(stmts []stmt, d *Diags) []*node {
	type frame struct {
		n    *node
		kids *[]*node
	}
	var root []*node
	stack := []frame{{kids: &root}}
	var last *node // the statement a following "{" attaches to
	for _, s := range stmts {
		top := &stack[len(stack)-1]
		switch s.brace {
		case '{':
			if last == nil || last.block {
				d.errorf(s.pos, "unexpected '{' with no keyword before it")
				// Parse the orphan block's body so its braces balance, and
				// drop it.
				orphan := &node{key: Token{Text: "{", Pos: s.pos}, block: true}
				stack = append(stack, frame{n: orphan, kids: &orphan.children})
				last = nil
				continue
			}
			last.block = true
			stack = append(stack, frame{n: last, kids: &last.children})
			last = nil
		case '}':
			if len(stack) == 1 {
				d.errorf(s.pos, "extra '}' found")
				last = nil
				continue
			}
			top.n.end = s.pos
			stack = stack[:len(stack)-1]
			last = nil
		default:
			n := &node{key: s.toks[0], args: s.toks[1:], raw: s.raw}
			*top.kids = append(*top.kids, n)
			last = n
		}
	}
	for i := len(stack) - 1; i > 0; i-- {
		d.errorf(stack[i].n.pos(), "block %q is not closed (missing '}')", stack[i].n.key.Text)
	}
	return root
}
