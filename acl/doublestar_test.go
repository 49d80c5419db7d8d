package acl

import (
	"bytes"
	"log/slog"
	"path"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestDoubleStar matches "**" globs, fixed and with placeholders, against
// names; every case is also run with the index off.
func TestDoubleStar(t *testing.T) {
	tests := []struct {
		glob    string
		account string
		match   []string
		refuse  []string
	}{
		// At the end: everything under the prefix, not the prefix itself.
		{"alice/**", "", []string{"alice/x", "alice/x/y", "alice/charts/mychart", "alice/"}, []string{"alice", "alicex/y", "bob/alice/x", "xalice/y"}},
		{"${account}/**", "alice", []string{"alice/app", "alice/charts/mychart", "alice/a/b/c/d"}, []string{"alice", "bob/x/y", "bob/alice/x", "alicex/y", "x/alice/y"}},
		// At the start: zero or more leading segments.
		{"**/x", "", []string{"x", "a/x", "a/b/x"}, []string{"ax", "a/xb", "a/bx", "x/a"}},
		{"**/${account}", "alice", []string{"alice", "team/alice", "a/b/alice"}, []string{"xalice", "alice/x"}},
		// In the middle: zero or more segments between.
		{"a/**/x", "", []string{"a/x", "a/b/x", "a/b/c/x"}, []string{"a/bx", "ab/x", "a/b/x/c", "x", "b/a/x"}},
		{"${account}/**/sig", "alice", []string{"alice/sig", "alice/app/sig", "alice/a/b/sig"}, []string{"bob/app/sig", "alice/appsig", "alice/sig/x"}},
		{"a/**/*.sig", "", []string{"a/x.sig", "a/b/c/x.sig"}, []string{"a/b/x.sag", "b/x.sig"}},
		{"*/**/x", "", []string{"a/x", "a/b/x"}, []string{"x", "/y"}},
		// Several, and alone.
		{"**/charts/**", "", []string{"charts/x", "a/charts/x/y"}, []string{"charts", "a/charts", "a/xcharts/y"}},
		{"**", "", []string{"", "a", "a/b", "a/b/c"}, nil},
		{"**/**", "", []string{"", "a", "a/b/c"}, nil},
		// Not a whole segment: one segment, as path.Match and docker_auth.
		{"a**", "", []string{"a", "ab", "abc"}, []string{"a/b", "ab/c"}},
		{"a/**b", "", []string{"a/b", "a/xb"}, []string{"a/x/b"}},
		{"a/***", "", []string{"a/b"}, []string{"a/b/c"}},
		{`a/\**`, "", []string{"a/*", "a/*b"}, []string{"a/b/c", "a/b"}},
		{`a/*\*`, "", []string{"a/b*", "a/*"}, []string{"a/b/*"}},
		{"a/[*]*/x", "", []string{"a/*/x", "a/**/x"}, []string{"a/x", "a/b/x"}},
		// Next to a placeholder, "**" is not a segment whatever the value:
		// the account "a/" gets "a/*", not "a/**".
		{"${account}**", "a/", []string{"a/b", "a/"}, []string{"a/b/c"}},
		{"**${account}", "/x", []string{"a/x", "/x"}, []string{"a/b/x"}},
		// Substituted values stay literal.
		{"${account}/**", "**", []string{"**/x", "**/x/y"}, []string{"alice/x", "a/b", "alice/x/y"}},
		{"${account}/**", "a*", []string{"a*/x", "a*/x/y"}, []string{"ab/x", "ab/x/y"}},
		{"${account}/**", "a.b", []string{"a.b/x/y"}, []string{"axb/x/y"}},
		{"${account}/**", "[a-z]", []string{"[a-z]/x/y"}, []string{"b/x/y"}},
		{"${account}/**", `a\`, []string{`a\/x/y`}, []string{`a/x/y`}},
		{"${account}/**", "(a|b)", []string{"(a|b)/x/y"}, []string{"a/x/y", "b/x"}},
		{"${account}/**", "a$", []string{"a$/x"}, []string{"a"}},
		{"${account}/**", "", []string{"/x/y"}, []string{"x/y"}},
		{"${account}/**", "a/b", []string{"a/b/x", "a/b/x/y"}, []string{"a/x", "a/c/x"}},
		{"[${account}]/**", "ab", []string{"a/x/y", "b/x"}, []string{"c/x", "ab/x"}},
		{"team-${labels:team}/**", "", nil, []string{"team-/x"}}, // no label: no match
		{"x/${account}/**", "alice", []string{"x/alice/y/z"}, []string{"x/alice", "x/bob/y", "alice/y"}},
		// Classes, questions marks and escapes keep their meaning.
		{"[a-c]/**", "", []string{"b/x/y"}, []string{"d/x/y"}},
		{"[^a-c]/**", "", []string{"d/x/y", "//x"}, []string{"a/x"}},
		{"[z-a]/**", "", nil, []string{"z/x", "a/x"}},
		{"[^z-a]/**", "", []string{"z/x", "a/x"}, []string{"ab/x"}},
		{`[\]]/**`, "", []string{"]/x"}, []string{"a/x"}},
		{"?/**", "", []string{"a/b/c", "é/b"}, []string{"ab/c", "/b/c"}},
		{"a.b/**", "", []string{"a.b/x"}, []string{"axb/x"}},
		{"a\n/**", "", []string{"a\n/x\ny"}, []string{"a/x"}},
	}
	for _, tt := range tests {
		t.Run(tt.glob+" "+tt.account, func(t *testing.T) {
			rules := one(Match{Name: str(tt.glob)}, "pull")
			for _, index := range []bool{true, false} {
				var opts []Option
				if !index {
					opts = append(opts, withoutIndex())
				}
				a := mustCompile(t, rules, opts...)
				for _, name := range tt.match {
					if d := a.Decide(&Request{Account: tt.account, Name: name, Actions: pull}); !d.Matched {
						t.Errorf("index=%v: %q does not match %q", index, tt.glob, name)
					}
				}
				for _, name := range tt.refuse {
					if d := a.Decide(&Request{Account: tt.account, Name: name, Actions: pull}); d.Matched {
						t.Errorf("index=%v: %q matches %q", index, tt.glob, name)
					}
				}
			}
		})
	}
}

// TestGlobRegexIsPathMatch checks the translation of globs without a "**"
// segment against path.Match itself: classes, escapes and single stars
// mean the same in the regexp.
func TestGlobRegexIsPathMatch(t *testing.T) {
	globs := []string{"", "a", "a/*", "*", "a**", "**a", "a/**b", "?", "a?c", "[abc]", "[^abc]", "[a-c]x", "[^a-c]", "[z-a]", "[^z-a]",
		`[\]]`, `[\-]`, `[\\]`, `a\*`, `\a`, `a\/b`, "[é-ü]", "]", "a-b", "a.b", "(x|y)", "^$", "{1}", "+", "[a-cx-z]*", "*.*", "é*",
		"a/*/b", "*/", "/*", "a/[*]", "[/]", "[^/]"}
	names := []string{"", "a", "b", "c", "d", "x", "z", "ab", "abc", "a/b", "a/c/b", "a/", "/", "/a", "*", "a*", "]", "-", `\`, "é", "ö", "ÿ",
		"a-b", "a.b", "axb", "(x|y)", "x", "^$", "{1}", "+", "\n", "a\nb", "a/*", "a.x", "ax", "\xff", "a\xff"}
	for _, g := range globs {
		body, deep, err := globRegex(g, true, true)
		if err != nil || deep {
			t.Fatalf("globRegex(%q) = %q, deep %v, %v", g, body, deep, err)
		}
		re := regexp.MustCompile(`(?s)^` + body + `$`)
		for _, s := range names {
			want, _ := path.Match(g, s)
			if got := re.MatchString(s); got != want {
				t.Errorf("glob %q as %q on %q: %v, path.Match says %v", g, re, s, got, want)
			}
		}
	}
	// Globs path.Match refuses are refused too.
	for _, g := range []string{"[", "[]", "[a", "[a-", "[a-]", "[-a]", `a\`, `[\`, "[^]", "[\xff]", "**/[", "a/**/[a-"} {
		if _, _, err := globRegex(g, true, true); err == nil {
			t.Errorf("globRegex(%q): no error", g)
		}
	}
}

func TestDoubleStarCompile(t *testing.T) {
	tests := []struct {
		src        string
		deep, tail bool
		err        string
	}{
		{"a/**", true, true, ""},
		{"a/**/b/**", true, false, ""},
		{"**/a/**", true, false, ""},
		{"**", true, false, ""},
		{"/**", true, true, ""},
		{"a/***", false, false, ""},
		{"a**", false, false, ""},
		{"${account}/**", true, true, ""},
		{"**/${account}/**", true, false, ""},
		{"${account}/**/**", true, false, ""},
		{"${account}/x**", false, false, ""},
		{"${account}**", false, false, ""},
		{"${labels:team}/**/${account}", true, false, ""},
		{"[${account}]/**", true, true, ""}, // path.Match on the head: the class may hold it
		{"[${account}]/**/x", false, false, "a character class cannot hold a placeholder"},
		{"[${account}]/*", false, false, ""}, // without a ** segment, path.Match as before
		{"/^a/**$/", false, false, "invalid nested repetition operator"},
		{"**/[a-", false, false, "invalid glob"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			p, err := compilePattern(tt.src)
			switch {
			case tt.err != "":
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
			case err != nil:
				t.Fatal(err)
			case p.deep != tt.deep || p.tail != tt.tail:
				t.Fatalf("deep, tail = %v, %v, want %v, %v", p.deep, p.tail, tt.deep, tt.tail)
			}
		})
	}
}

// TestDoubleStarNotice: validate and the startup log say where a "**"
// segment is used; nothing else is noted, and no warning is given.
func TestDoubleStarNotice(t *testing.T) {
	rules := []Rule{
		{Match: &Match{Account: str("/.+/"), Name: str("${account}/**")}, Actions: acts("*")},
		{Match: &Match{Name: str("a**")}, Actions: acts("pull")},
		{Match: &Match{Labels: map[string]string{"g": "**/ops"}}, Actions: acts("pull")},
	}
	var buf bytes.Buffer
	a := mustCompile(t, rules, WithLogger(slog.New(slog.NewTextHandler(&buf, nil))))
	want := []string{
		`acl[0].match.name: glob "${account}/**" has a "**" path segment, which matches any number of segments ("/" included); docker_auth reads it as "*", one segment`,
		`acl[2].match.labels.g: glob "**/ops" has a "**" path segment, which matches any number of segments ("/" included); docker_auth reads it as "*", one segment`,
	}
	if got := a.Notices(); !reflect.DeepEqual(got, want) {
		t.Errorf("Notices =\n%q\nwant\n%q", got, want)
	}
	if w := a.Warnings(); len(w) != 0 {
		t.Errorf("Warnings = %q", w)
	}
	if n := strings.Count(buf.String(), "level=INFO"); n != 2 || strings.Contains(buf.String(), "level=WARN") {
		t.Errorf("log:\n%s", buf.String())
	}
	var nilACL *ACL
	if nilACL.Notices() != nil {
		t.Error("nil ACL has notices")
	}
}

// FuzzGlobRegex: the translation refuses what path.Match refuses, and
// without a "**" segment it matches what path.Match matches.
func FuzzGlobRegex(f *testing.F) {
	for _, seed := range [][2]string{{"a/*", "a/b"}, {"[^a-c]x", "dx"}, {`[\]]`, "]"}, {"[z-a]", "a"}, {`a\*`, "a*"}, {"a/**", "a/b/c"}, {"?", "é"}} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, glob, s string) {
		body, deep, err := globRegex(glob, true, true)
		_, perr := path.Match(glob, s)
		if (err != nil) != (perr != nil) {
			t.Fatalf("glob %q: translation error %v, path.Match error %v", glob, err, perr)
		}
		if err != nil || deep {
			return
		}
		re, err := regexp.Compile(`(?s)^` + body + `$`)
		if err != nil {
			return // invalid UTF-8 in the glob's text
		}
		if got, want := re.MatchString(s), must(path.Match(glob, s)); got != want {
			t.Fatalf("glob %q as %q on %q: %v, path.Match says %v", glob, re, s, got, want)
		}
	})
}

func must(ok bool, _ error) bool { return ok }

// TestTailMatchIsRegex: the globs ending with their only "**" segment,
// matched without a regexp, match what their regexp translation matches.
func TestTailMatchIsRegex(t *testing.T) {
	globs := []string{"a/**", "/**", "a//**", "*/**", "a*/**", "[a-c]/**", "[^a]/**", "[/]/**", "?/**", `a\/**`, `\a/**`,
		"a/*/b/**", "*/*/**", "a**/**", "a/[x-y]?/**"}
	names := []string{"", "a", "a/", "a/b", "a/b/c", "/", "//", "/a", "a//", "a//b", "ab/c", "b/c/d", "d/x", "a/x/b/c", "a/xy/b/c",
		"a/xa/z", "x/y/z/w", "a\n/b", "\xff/a", "é/x", "/a/b"}
	for _, g := range globs {
		p, err := compilePattern(g)
		if err != nil || !p.tail {
			t.Fatalf("%q: tail %v, %v", g, p != nil && p.tail, err)
		}
		body, _, _ := globRegex(g, true, true)
		re := regexp.MustCompile(`(?s)^` + body + `$`)
		for _, s := range names {
			if got, want := p.match(s, nil), re.MatchString(s); got != want {
				t.Errorf("%q on %q: %v, the regexp says %v", g, s, got, want)
			}
		}
	}
}

// BenchmarkNamespaceRule decides the usual namespace rule, "${account}/*"
// and "${account}/**", for 5,000 accounts in turn (more than the regex
// cache holds).
func BenchmarkNamespaceRule(b *testing.B) {
	accounts := make([]string, 5000)
	for i := range accounts {
		accounts[i] = "user" + strconv.Itoa(i)
	}
	for _, glob := range []string{"${account}/*", "${account}/**", "${account}/**/sig"} {
		a := mustCompile(b, []Rule{{Match: &Match{Account: str("/.+/"), Name: str(glob)}, Actions: acts("*")}})
		b.Run(strings.ReplaceAll(glob, "/", "|"), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				acc := accounts[i%len(accounts)]
				i++
				a.Decide(&Request{Account: acc, Name: acc + "/charts/sig", Actions: pullPush})
			}
		})
	}
}
