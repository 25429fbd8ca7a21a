package config

import (
	"fmt"
	"path"
	"sort"
	"strings"
	"testing"
)

// memFS is an in-memory file tree for parser tests.
type memFS map[string]string

func (m memFS) ReadFile(name string) ([]byte, error) {
	s, ok := m[path.Clean(name)]
	if !ok {
		return nil, fmt.Errorf("open %s: no such file or directory", name)
	}
	return []byte(s), nil
}

func (m memFS) Glob(pattern string) ([]string, error) {
	var out []string
	for k := range m {
		if ok, err := path.Match(path.Clean(pattern), k); err != nil {
			return nil, err
		} else if ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out, nil
}

// statements lexes a tree of files and renders each statement as
// "line:col word word", braces as themselves.
func statements(t *testing.T, fs memFS, id string) ([]string, *Diags) {
	t.Helper()
	d := &Diags{}
	lx := &lexer{configID: id, fs: fs, diags: d, defs: map[string][]string{}, budget: maxWork}
	lx.readFile("/etc/k.conf", Pos{File: "/etc/k.conf"})
	var out []string
	for _, s := range lx.out {
		if s.brace != 0 {
			out = append(out, string(s.brace))
			continue
		}
		out = append(out, fmt.Sprintf("%s:%d:%d %s", path.Base(s.pos.File), s.pos.Line, s.pos.Col, strings.Join(tokTexts(s.toks), "|")))
	}
	return out, d
}

func TestGrammar(t *testing.T) {
	cases := []struct {
		name  string
		files memFS
		id    string
		want  []string
		diag  string // substring of an expected diagnostic
	}{
		{
			name:  "comments outside quotes only",
			files: memFS{"/etc/k.conf": "a 1 # c\nb 2 ! c\nauth_pass \"ab#cd!ef\" # x\nc 'x#y'\n"},
			want:  []string{"k.conf:1:1 a|1", "k.conf:2:1 b|2", "k.conf:3:1 auth_pass|ab#cd!ef", "k.conf:4:1 c|'x"},
		},
		{
			name:  "braces glued to words",
			files: memFS{"/etc/k.conf": "VI_1{\n  x { 10.0.0.1 }\n} vrrp_instance X {\n}"},
			want:  []string{"k.conf:1:1 VI_1", "{", "k.conf:2:3 x", "{", "k.conf:2:7 10.0.0.1", "}", "}", "k.conf:3:3 vrrp_instance|X", "{", "}"},
		},
		{
			name:  "brace inside quotes is text",
			files: memFS{"/etc/k.conf": `notify "/bin/echo {a}" root` + "\n"},
			want:  []string{"k.conf:1:1 notify|/bin/echo {a}|root"},
		},
		{
			name:  "quoted token and quote ending a word",
			files: memFS{"/etc/k.conf": `router_id "my router" ab"cd"` + "\n"},
			want:  []string{"k.conf:1:1 router_id|my router|ab|cd"},
		},
		{
			name:  "unterminated quote",
			files: memFS{"/etc/k.conf": "a \"bc\n"},
			diag:  "/etc/k.conf:1:3: error: unterminated quoted string",
		},
		{
			name: "include glob relative to including file, sorted",
			files: memFS{
				"/etc/k.conf":        "top 1\ninclude conf.d/*.conf\nend 1\n",
				"/etc/conf.d/b.conf": "b 2\n",
				"/etc/conf.d/a.conf": "a 1\ninclude ../sub/x.inc\n",
				"/etc/sub/x.inc":     "x 9\n",
			},
			want: []string{"k.conf:1:1 top|1", "a.conf:1:1 a|1", "x.inc:1:1 x|9", "b.conf:1:1 b|2", "k.conf:3:1 end|1"},
		},
		{
			name: "include brace alternatives",
			files: memFS{
				"/etc/k.conf":  "include {one,two}.inc\n",
				"/etc/one.inc": "one 1\n",
				"/etc/two.inc": "two 2\n",
			},
			want: []string{"one.inc:1:1 one|1", "two.inc:1:1 two|2"},
		},
		{
			name:  "include loop detected",
			files: memFS{"/etc/k.conf": "include a.inc\n", "/etc/a.inc": "a 1\ninclude k.conf\n"},
			want:  []string{"a.inc:1:1 a|1"},
			diag:  "/etc/a.inc:2: error: include loop: /etc/k.conf is already being read",
		},
		{
			name:  "plain include ignores a missing file, includem does not",
			files: memFS{"/etc/k.conf": "include nope.conf\nincludem nope2.conf\n"},
			diag:  "/etc/k.conf:2: error: include /etc/nope2.conf matches no file",
		},
		{
			name:  "definitions and substitution",
			files: memFS{"/etc/k.conf": "$IF=eth0\n$PRIO=150\ninterface $IF\npriority ${PRIO}\nscript \"echo $HOME\"\n"},
			want:  []string{"k.conf:3:1 interface|eth0", "k.conf:4:1 priority|150", "k.conf:5:1 script|echo $HOME"},
		},
		{
			name:  "recursive definition and empty value",
			files: memFS{"/etc/k.conf": "$A=${B}0\n$B=1\n$E=\nv $A x${E}y\n"},
			want:  []string{"k.conf:4:1 v|10|xy"},
		},
		{
			name:  "multi-line definition expands to lines",
			files: memFS{"/etc/k.conf": "$BLK=vrrp_instance V { \\\n  priority 9 \\\n}\n$BLK\n"},
			want:  []string{"k.conf:4:1 vrrp_instance|V", "{", "k.conf:4:3 priority|9", "}"},
		},
		{
			name:  "self-recursive definition is an error, not a hang",
			files: memFS{"/etc/k.conf": "$A=$A x\nv $A\n"},
			diag:  "macro expansion does not end (recursive definition?)",
		},
		{
			name:  "conditionals",
			files: memFS{"/etc/k.conf": "@high priority 170\n@low priority 85\n@^high state BACKUP\n@^low state MASTER\n"},
			id:    "high",
			want:  []string{"k.conf:1:7 priority|170", "k.conf:4:7 state|MASTER"},
		},
		{
			name:  "~SEQ replicates the rest of the line",
			files: memFS{"/etc/k.conf": "~SEQ(N, 0, 2, 4) ip 10.0.${N}.1\n~SEQ(M,2) m $M\n~SEQx(H, 0x9, 1, 0xb) h ${H}\n"},
			want: []string{"k.conf:1:18 ip|10.0.0.1", "k.conf:1:18 ip|10.0.2.1", "k.conf:1:18 ip|10.0.4.1",
				"k.conf:2:11 m|1", "k.conf:2:11 m|2", "k.conf:3:23 h|9", "k.conf:3:23 h|a", "k.conf:3:23 h|b"},
		},
		{
			name:  "~SEQ counting down",
			files: memFS{"/etc/k.conf": "~SEQ(N, 3, 1) n $N\n"},
			want:  []string{"k.conf:1:15 n|3", "k.conf:1:15 n|2", "k.conf:1:15 n|1"},
		},
		{
			name:  "~LST single, multiple variables, nested with ~SEQ",
			files: memFS{"/etc/k.conf": "~LST(I, a, b) x $I\n~LST({A,B}, {1,2},{3,4}) ${A}.${B}\n~LST(P, 1, 2) ~SEQ(Q, 5, 6) ${P}${Q}\n"},
			want: []string{"k.conf:1:15 x|a", "k.conf:1:15 x|b", "k.conf:2:26 1.2", "k.conf:2:26 3.4",
				"k.conf:3:29 15", "k.conf:3:29 16", "k.conf:3:29 25", "k.conf:3:29 26"},
		},
		{
			name:  "~SEQ bomb is bounded",
			files: memFS{"/etc/k.conf": "~SEQ(A, 1, 100000) ~SEQ(B, 1, 100000) x\n"},
			diag:  "config expansion does more than",
		},
		{
			name:  "replication whose lines are all dropped is still bounded",
			files: memFS{"/etc/k.conf": "~SEQ(A, 1, 60000) ~SEQ(B, 1, 60000) @nope x\n"},
			diag:  "config expansion does more than",
		},
		{
			name:  "exponential macro is bounded",
			files: memFS{"/etc/k.conf": "$A=xxxxxxxx\n$B=$A $A $A $A\n$C=$B $B $B $B\n$D=$C $C $C $C\n$E=$D $D $D $D\n$F=$E $E $E $E\n$G=$F $F $F $F\n$H=$G $G $G $G\nv $H\n"},
			diag:  "macro expansion",
		},
		{
			name:  "include brace bomb is bounded",
			files: memFS{"/etc/k.conf": "include " + strings.Repeat("{a,b}", 30) + "\n"},
			diag:  "expands to more than 1024 patterns",
		},
		{
			name:  "built-ins",
			files: memFS{"/etc/k.conf": "p ${_PWD} ${_INSTANCE} \"a${_HASH}b${_BANG}\"\n"},
			id:    "node7",
			want:  []string{"k.conf:1:1 p|/etc|node7|a#b!"},
		},
		{
			name:  "CRLF and blank lines keep line numbers",
			files: memFS{"/etc/k.conf": "\r\n\r\n  a 1\r\n"},
			want:  []string{"k.conf:3:3 a|1"},
		},
		{
			name:  "overlong line",
			files: memFS{"/etc/k.conf": "a " + strings.Repeat("x", 1100) + "\n"},
			diag:  "/etc/k.conf:1: error: line too long",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, d := statements(t, c.files, c.id)
			if c.want != nil && strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("statements:\n got %q\nwant %q", got, c.want)
			}
			dt := diagText(d)
			if c.diag == "" && d.Has(Warning) {
				t.Errorf("unexpected diagnostics:\n%s", dt)
			}
			if c.diag != "" && !strings.Contains(dt, c.diag) {
				t.Errorf("want diagnostic %q, got:\n%s", c.diag, dt)
			}
		})
	}
}

func TestShellWords(t *testing.T) {
	cases := []struct {
		in    string
		want  []string
		shell bool
	}{
		{`/bin/notify.sh MASTER VI_1`, []string{"/bin/notify.sh", "MASTER", "VI_1"}, false},
		{`ab"c d"e 'f g'`, []string{"abc de", "f g"}, false},
		{`printf a\tb\x41\101`, []string{"printf", "a\tbAA"}, false},
		{`</dev/tcp/127.0.0.1/80`, []string{"</dev/tcp/127.0.0.1/80"}, true},
		{`bash -c '</dev/tcp/127.0.0.1/80'`, []string{"bash", "-c", "</dev/tcp/127.0.0.1/80"}, false},
		{`killall -0 httpd || exit 1`, []string{"killall", "-0", "httpd", "||", "exit", "1"}, true},
		{`echo $HOME`, []string{"echo", "$HOME"}, true},
	}
	for _, c := range cases {
		got, err := shellWords(c.in)
		if err != nil || strings.Join(got, "|") != strings.Join(c.want, "|") {
			t.Errorf("shellWords(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
		if needsShell(c.in) != c.shell {
			t.Errorf("needsShell(%q) = %v", c.in, !c.shell)
		}
	}
	if _, err := shellWords(`"open`); err == nil {
		t.Error("unterminated quote accepted")
	}
}
