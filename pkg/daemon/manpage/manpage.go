// Package manpage renders a command's flag set as a troff man page, so
// halod(8) and haloctl(8) are generated from the flag definitions and
// cannot drift from them.
package manpage

import (
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Section is a titled block of prose; paragraphs are separated by blank
// lines, and a line starting with two spaces is shown as literal text.
type Section struct {
	Title string
	Body  string
}

// Page describes one man page.
type Page struct {
	Name     string
	Section  int
	Date     string // e.g. "2026-11"
	Version  string
	Summary  string // one line for NAME
	Synopsis string
	Flags    *flag.FlagSet
	Before   []Section // after SYNOPSIS, before OPTIONS (DESCRIPTION…)
	After    []Section // after OPTIONS (SIGNALS, FILES, SEE ALSO…)
}

// Render writes p in man(7) macros.
func Render(w io.Writer, p Page) {
	fmt.Fprintf(w, ".TH %s %d %q %q %q\n", strings.ToUpper(p.Name), p.Section, p.Date, "halo "+p.Version, "halo manual")
	fmt.Fprintf(w, ".SH NAME\n%s \\- %s\n", p.Name, esc(p.Summary))
	fmt.Fprintf(w, ".SH SYNOPSIS\n.B %s\n%s\n", p.Name, esc(p.Synopsis))
	for _, s := range p.Before {
		section(w, s)
	}
	if p.Flags != nil {
		fmt.Fprintln(w, ".SH OPTIONS")
		type entry struct {
			names []string
			f     *flag.Flag
		}
		byUsage := map[string]*entry{}
		var order []*entry
		p.Flags.VisitAll(func(f *flag.Flag) {
			// "short for --x" flags are listed with their long form.
			if strings.HasPrefix(f.Usage, "short for --") {
				long := strings.TrimPrefix(f.Usage, "short for --")
				if e, ok := byUsage["\x00"+long]; ok {
					e.names = append(e.names, f.Name)
					return
				}
				e := &entry{names: []string{f.Name}}
				byUsage["\x00"+long] = e
				return
			}
			e := byUsage["\x00"+f.Name]
			if e == nil {
				e = &entry{}
				byUsage["\x00"+f.Name] = e
			}
			e.names = append([]string{f.Name}, e.names...)
			e.f = f
			order = append(order, e)
		})
		sort.Slice(order, func(i, j int) bool { return order[i].f.Name < order[j].f.Name })
		for _, e := range order {
			var names []string
			for _, n := range e.names {
				dash := "\\-\\-"
				if len(n) == 1 {
					dash = "\\-"
				}
				names = append(names, "\\fB"+dash+esc(n)+"\\fR")
			}
			arg, usage := flag.UnquoteUsage(e.f)
			head := strings.Join(names, ", ")
			if arg != "" {
				head += " \\fI" + esc(arg) + "\\fR"
			}
			fmt.Fprintf(w, ".TP\n%s\n%s", head, esc(usage))
			if def := e.f.DefValue; def != "" && def != "false" && def != "0" {
				fmt.Fprintf(w, " (default: %s)", esc(def))
			}
			fmt.Fprintln(w)
		}
	}
	for _, s := range p.After {
		section(w, s)
	}
}

func section(w io.Writer, s Section) {
	fmt.Fprintf(w, ".SH %s\n", strings.ToUpper(s.Title))
	for i, para := range strings.Split(strings.TrimSpace(s.Body), "\n\n") {
		if i > 0 {
			fmt.Fprintln(w, ".PP")
		}
		lines := strings.Split(para, "\n")
		if strings.HasPrefix(lines[0], "  ") {
			fmt.Fprintln(w, ".nf")
			for _, l := range lines {
				fmt.Fprintln(w, esc(strings.TrimPrefix(l, "  ")))
			}
			fmt.Fprintln(w, ".fi")
			continue
		}
		fmt.Fprintln(w, esc(strings.Join(lines, " ")))
	}
}

// esc protects troff's special characters: backslashes, and a leading dot
// or quote that would start a request.
func esc(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	var b strings.Builder
	for i, l := range strings.Split(s, "\n") {
		if i > 0 {
			b.WriteByte('\n')
		}
		if strings.HasPrefix(l, ".") || strings.HasPrefix(l, "'") {
			b.WriteString(`\&`)
		}
		b.WriteString(l)
	}
	return b.String()
}
