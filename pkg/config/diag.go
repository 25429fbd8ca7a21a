package config

import (
	"fmt"
	"sort"
	"strings"
)

// Severity orders diagnostics. Exit codes follow keepalived's `-t`
// (docs/keepalived.md#check-exit-codes).
type Severity int

const (
	// Note is information that changes nothing: a keyword halo accepts but
	// does not act on, a deprecated alias. It does not affect the exit code.
	Note Severity = iota
	// Warning is something keepalived works around (unknown keyword, value
	// out of range replaced by its default). halod starts; -t exits 5;
	// --strict-config makes it an error.
	Warning
	// Error is a config halod refuses to run (or to reload to).
	Error
	// Security is a script-security violation (-t exits 6).
	Security
	// Fatal means the config could not be read at all (-t exits 4).
	Fatal
)

func (s Severity) String() string {
	switch s {
	case Note:
		return "note"
	case Warning:
		return "warning"
	case Error:
		return "error"
	case Security:
		return "security"
	case Fatal:
		return "fatal"
	}
	return "?"
}

// Diag is one diagnostic with its position.
type Diag struct {
	Pos      Pos      `json:"pos"`
	Severity Severity `json:"-"`
	Level    string   `json:"severity"`
	Msg      string   `json:"message"`
}

// String formats the diagnostic as compilers do: FILE:LINE:COL: LEVEL: MSG,
// where LEVEL is note, warning or error.
func (d Diag) String() string {
	return fmt.Sprintf("%s: %s: %s", d.Pos, d.Severity.Level(), d.Msg)
}

// Level is the word printed for the severity.
func (s Severity) Level() string {
	switch s {
	case Note:
		return "note"
	case Warning:
		return "warning"
	}
	return "error"
}

// Diags collects diagnostics; all are reported, not just the first.
type Diags struct {
	List []Diag
}

func (d *Diags) add(sev Severity, pos Pos, format string, args ...any) {
	d.List = append(d.List, Diag{Pos: pos, Severity: sev, Level: sev.Level(), Msg: fmt.Sprintf(format, args...)})
}

func (d *Diags) notef(pos Pos, format string, args ...any)  { d.add(Note, pos, format, args...) }
func (d *Diags) warnf(pos Pos, format string, args ...any)  { d.add(Warning, pos, format, args...) }
func (d *Diags) errorf(pos Pos, format string, args ...any) { d.add(Error, pos, format, args...) }
func (d *Diags) fatalf(pos Pos, format string, args ...any) { d.add(Fatal, pos, format, args...) }

// Max is the most severe diagnostic's severity, ignoring notes; -1 when
// there is none.
func (d *Diags) Max() Severity {
	m := Severity(-1)
	for _, x := range d.List {
		if x.Severity > m && x.Severity != Note {
			m = x.Severity
		}
	}
	return m
}

// Has reports whether any diagnostic is at least sev.
func (d *Diags) Has(sev Severity) bool {
	for _, x := range d.List {
		if x.Severity >= sev {
			return true
		}
	}
	return false
}

// sort orders diagnostics by file position, keeping insertion order for
// equal positions.
func (d *Diags) sort() {
	sort.SliceStable(d.List, func(i, j int) bool {
		a, b := d.List[i].Pos, d.List[j].Pos
		if a.File != b.File {
			return false // keep file order as read
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
}

// ExitCode is what `halod -t` exits with: 0 clean, 4 fatal, 5 errors or
// warnings, 6 script-security violations. As in keepalived, a security
// violation wins over other errors. Warnings already exit 5, so strict
// changes nothing here; it matters for whether halod runs (Err).
func (d *Diags) ExitCode(strict bool) int {
	code := 0
	for _, x := range d.List {
		switch x.Severity {
		case Fatal:
			return 4
		case Security:
			code = 6
		case Error:
			if code < 5 {
				code = 5
			}
		case Warning:
			if code < 5 {
				code = 5
			}
		}
	}
	return code
}

// Error is the error a failed Load returns: every diagnostic that stopped
// the config from being used.
type LoadError struct {
	Diags []Diag
}

func (e *LoadError) Error() string {
	var b strings.Builder
	for i, d := range e.Diags {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(d.String())
	}
	return b.String()
}
