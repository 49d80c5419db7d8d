package acl

import (
	"fmt"
	"path"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCompilePatternKind(t *testing.T) {
	tests := []struct {
		src  string
		want kind
	}{
		{"alice", kindLiteral},
		{"", kindLiteral},
		{"/", kindLiteral},
		{"alice/*", kindGlob},
		{`a\*`, kindGlob},
		{"app?", kindGlob},
		{"/^a$/", kindRegex},
		{"//", kindRegex},
		{"${account}", kindTmplLiteral},
		{"team-${labels:team}/${account}", kindTmplLiteral},
		{"${account}/*", kindTmplGlob},
		{`\\${account}`, kindTmplGlob},
		{"/^${account}$/", kindTmplRegex},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			p, err := compilePattern(tt.src)
			if err != nil {
				t.Fatal(err)
			}
			if p.kind != tt.want {
				t.Errorf("kind = %d, want %d", p.kind, tt.want)
			}
		})
	}
}

var quoteCases = []string{
	"", "alice", "a.b", "*", "?", "[a-z]", `a\`, `\`, "]", "a-z", "(x|y)", "^$", "{1,2}", "+", "a/b", "ünï", "\x00", "${account}",
}

// TestQuoting checks that a quoted value, used as a whole glob or regex,
// matches itself and nothing it would match unquoted.
func TestQuoting(t *testing.T) {
	for _, v := range quoteCases {
		t.Run(fmt.Sprintf("%q", v), func(t *testing.T) { checkQuoting(t, v) })
	}
}

func FuzzQuoting(f *testing.F) {
	for _, v := range quoteCases {
		f.Add(v)
	}
	f.Fuzz(checkQuoting)
}

func checkQuoting(t *testing.T, v string) {
	g := string(appendGlobEscaped(nil, v))
	if ok, err := path.Match(g, v); !ok || err != nil {
		t.Errorf("glob %q does not match %q: %v", g, v, err)
	}
	if v != "x" {
		if ok, _ := path.Match(g, "x"); ok {
			t.Errorf("glob %q matches %q", g, "x")
		}
	}
	if !utf8.ValidString(v) {
		return // such a value makes the regex fail to compile: no match
	}
	r := regexp.MustCompile(`^(?:` + string(appendRegexQuoted(nil, v)) + `)$`)
	if !r.MatchString(v) {
		t.Errorf("regex %q does not match %q", r, v)
	}
	if v != "x" && r.MatchString("x") {
		t.Errorf("regex %q matches %q", r, "x")
	}
	in := regexp.MustCompile(`^[` + string(appendRegexQuoted(nil, v)) + `x]$`)
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < utf8.RuneSelf && !in.MatchString(string(c)) {
			t.Errorf("class %q does not match %q", in, c)
		}
	}
}

func TestRegexCache(t *testing.T) {
	c := newRegexCache(4)
	if re := c.get([]byte("(")); re != nil {
		t.Error("invalid regex compiled")
	}
	first := c.get([]byte("a"))
	if first == nil || c.get([]byte("a")) != first {
		t.Error("cached regex not reused")
	}
	for i := range 20 {
		if c.get(fmt.Appendf(nil, "r%d", i)) == nil {
			t.Fatal("valid regex not compiled")
		}
		if n := c.len(); n > 4 {
			t.Fatalf("cache holds %d entries, cap 4", n)
		}
	}
	if c.get([]byte("r19")) == nil || c.get([]byte("r18")) == nil {
		t.Error("recent entries lost")
	}
}

// TestPatternNeverPanics feeds odd patterns and values through Compile and
// Decide.
func TestPatternNeverPanics(t *testing.T) {
	odd := []string{"", "/", "//", "///", "${", "${}", "$", "}", "${account", "[", `\`, "/${labels:a}/", "${labels:a}${labels:b}${labels:c}${labels:d}${labels:e}", "\xff", "/\xff/"}
	for _, src := range odd {
		for _, val := range odd {
			a, err := Compile(one(Match{Account: str(src), Name: str(src), Labels: map[string]string{"a": src}}, "*"))
			if err != nil {
				continue
			}
			labels := map[string][]string{"a": {val, "x"}, "b": {val}, "c": {val}, "d": {val}, "e": {val, val}}
			a.Decide(&Request{Account: val, Name: val, Labels: labels, Actions: []string{val}})
		}
	}
}

// The shortcuts must answer what path.Match and the regexp answer.
var shortcutInputs = []string{"", "a", "alice", "alice/", "alice/app", "alice/app/x", "alicex/app", "\n", "\n\n", "a\n",
	"\na", "\xff", "é", "ali*ce/a?p", "[x]", `a\b`}

func TestGlobMatchMatchesPathMatch(t *testing.T) {
	for _, glob := range []string{"", "alice", "alice/*", "*", "alice*", "alice/a*", "a?ice/*", "alice/*/x", `alice\*`,
		`alice/\*`, "[a-c]lice/*", "alice/**", "*/app", "ali*ce/a?p", "alice/[x]"} {
		for _, s := range shortcutInputs {
			want, err := path.Match(glob, s)
			if err != nil {
				t.Fatalf("bad test glob %q: %v", glob, err)
			}
			if got := globMatch(glob, s); got != want {
				t.Errorf("globMatch(%q, %q) = %v, path.Match says %v", glob, s, got, want)
			}
		}
	}
}

func TestRegexShapes(t *testing.T) {
	tests := []struct {
		body string
		want regexShape
	}{
		{".+", shapeAnyLine},
		{"(?:.+)", shapeAnyLine},
		{"..*", shapeGeneral}, // not simplified to .+; still correct
		{".*", shapeAll},
		{"", shapeAll},
		{"(?s).+", shapeGeneral},
		{"^.+$", shapeGeneral},
		{"(.+)", shapeGeneral},
		{".+?", shapeAnyLine}, // laziness does not change whether it matches
		{"a.+", shapeGeneral},
		{".", shapeGeneral},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			p, err := compilePattern("/" + tt.body + "/")
			if err != nil {
				t.Fatal(err)
			}
			if p.shape != tt.want {
				t.Fatalf("shape = %d, want %d", p.shape, tt.want)
			}
			for _, s := range shortcutInputs {
				if got, want := p.match(s, nil), p.re.MatchString(s); got != want {
					t.Errorf("/%s/ on %q: %v, the regexp says %v", tt.body, s, got, want)
				}
			}
		})
	}
}

func TestLiteralSuffix(t *testing.T) {
	tests := []struct{ src, want string }{
		{"alice/app", "alice/app"},
		{"*/app", "/app"},
		{"team/*", ""},
		{"[abc]def", "def"},
		{"x[^a]y", "y"},
		{`a\*bc`, "bc"},
		{`ab\c`, "c"},
		{"a?b", "b"},
		{"*", ""},
		{"**/app", "app"}, // "**/app" matches "app"
		{"**/**/app", "app"},
		{"a/**/app", "/app"},
		{"a/**", ""},
		{"**/app/**", ""},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			p, err := compilePattern(tt.src)
			if err != nil {
				t.Fatal(err)
			}
			got := literalSuffix(p)
			if got != tt.want {
				t.Fatalf("literalSuffix(%q) = %q, want %q", tt.src, got, tt.want)
			}
			// Whatever the glob matches ends with it.
			for _, s := range []string{"alice/app", "x/app", "adef", "x]y", "a*bc", "abc", "axb", "y/app", "app", "a/app", "a/x/app"} {
				if p.kind == kindGlob && p.match(s, nil) && !strings.HasSuffix(s, got) {
					t.Errorf("%q matches %q, which does not end with %q", tt.src, s, got)
				}
			}
		})
	}
}
