package manpage

import (
	"bytes"
	"flag"
	"strings"
	"testing"
)

func TestRender(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.String("config-id", "", "config `id` for @id lines")
	fs.String("i", "", "short for --config-id")
	fs.Bool("D", false, "debug log")
	fs.String("metrics-addr", "127.0.0.1:9650", "`address` of /metrics")
	var b bytes.Buffer
	Render(&b, Page{Name: "halod", Section: 8, Version: "1.0", Summary: "a daemon", Synopsis: "[-f FILE]", Flags: fs,
		Before: []Section{{Title: "Description", Body: "First.\n\n.starts with a dot\n\n  literal\\line"}}})
	out := b.String()
	for _, want := range []string{
		`.TH HALOD 8 "" "halo 1.0" "halo manual"`,
		".SH NAME\nhalod \\- a daemon\n",
		"\\fB\\-\\-config\\-id\\fR, \\fB\\-i\\fR \\fIid\\fR\nconfig id for @id lines\n",
		"\\fB\\-D\\fR\ndebug log\n",
		"\\fB\\-\\-metrics\\-addr\\fR \\fIaddress\\fR\naddress of /metrics (default: 127.0.0.1:9650)\n",
		".PP\n\\&.starts with a dot\n",
		".nf\nliteral\\eline\n.fi\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	if strings.Count(out, "config id for") != 1 {
		t.Errorf("alias listed twice:\n%s", out)
	}
}
