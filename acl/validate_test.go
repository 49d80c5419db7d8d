package acl

import (
	"bytes"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/cfgerr"
)

// wantErr is one expected error: its path relative to the acl list and a
// substring of its message.
type wantErr struct {
	path string // dotted, e.g. "0.match.ip"
	msg  string
}

func TestCompileErrors(t *testing.T) {
	labels := func(k, v string) map[string]string { return map[string]string{k: v} }
	tests := []struct {
		name  string
		rules []Rule
		want  []wantErr // nil: compiles
	}{
		{"missing match", []Rule{{Actions: acts("pull")}}, []wantErr{{"0.match", "match is required"}}},
		{"missing actions", []Rule{{Match: &Match{}}}, []wantErr{{"0.actions", "actions is required; use [] to deny"}}},
		{"missing both", []Rule{{}}, []wantErr{{"0.actions", "actions is required"}, {"0.match", "match is required"}}},
		{"empty match allowed", one(Match{}, "pull"), nil},
		{"empty actions allowed", one(Match{Account: str("x")}), nil},
		{"empty action", one(Match{}, "pull", ""), []wantErr{{"0.actions.1", "must not be empty"}}},
		{"action with comma", one(Match{}, "pull,push"), []wantErr{{"0.actions.0", "comma"}}},
		{"good glob", one(Match{Name: str("[a-z]*/app?")}, "pull"), nil},
		{"escaped glob", one(Match{Name: str(`a\*b`)}, "pull"), nil},
		{"bad glob", one(Match{Name: str("[a-")}, "pull"), []wantErr{{"0.match.name", `invalid glob "[a-": syntax error in pattern`}}},
		{"bad glob trailing backslash", one(Match{Type: str(`a\`)}, "pull"), []wantErr{{"0.match.type", "invalid glob"}}},
		{"bad glob after mismatch", one(Match{Service: str("x[")}, "pull"), []wantErr{{"0.match.service", "invalid glob"}}},
		{"good regex", one(Match{Account: str(`/^(\w+)-dev$/`)}, "pull"), nil},
		{"bad regex", one(Match{Account: str("/(a/")}, "pull"), []wantErr{{"0.match.account", `invalid regex "/(a/": missing closing )`}}},
		{"bad regex repeat", one(Match{Account: str("/a**/")}, "pull"), []wantErr{{"0.match.account", "invalid nested repetition operator"}}},
		{"single slash is a literal", one(Match{Name: str("/")}, "pull"), nil},
		{"empty regex", one(Match{Name: str("//")}, "pull"), nil},
		{"ipv4", one(Match{IP: str("192.0.2.1")}, "pull"), nil},
		{"ipv4 cidr", one(Match{IP: str("192.0.2.0/24")}, "pull"), nil},
		{"ipv6", one(Match{IP: str("2001:db8::1")}, "pull"), nil},
		{"ipv6 cidr", one(Match{IP: str("2001:db8::/32")}, "pull"), nil},
		{"bad cidr bits", one(Match{IP: str("10.0.0.0/33")}, "pull"), []wantErr{{"0.match.ip", `invalid IP or CIDR "10.0.0.0/33"`}}},
		{"bad ipv4", one(Match{IP: str("300.1.1.1")}, "pull"), []wantErr{{"0.match.ip", "invalid IP or CIDR"}}},
		{"bad ipv6 cidr", one(Match{IP: str("2001:db8::/129")}, "pull"), []wantErr{{"0.match.ip", "invalid IP or CIDR"}}},
		{"hostname", one(Match{IP: str("localhost")}, "pull"), []wantErr{{"0.match.ip", "invalid IP or CIDR"}}},
		{"empty ip", one(Match{IP: str("")}, "pull"), []wantErr{{"0.match.ip", "invalid IP or CIDR"}}},
		{"zoned ip", one(Match{IP: str("fe80::1%eth0")}, "pull"), []wantErr{{"0.match.ip", "zones are not supported"}}},
		{"label", one(Match{Labels: labels("group", "ops")}, "pull"), nil},
		{"bad label pattern", one(Match{Labels: labels("group", "/[/")}, "pull"), []wantErr{{"0.match.labels.group", "invalid regex"}}},
		{"empty label name", one(Match{Labels: labels("", "x")}, "pull"), []wantErr{{"0.match.labels", "label name must not be empty"}}},
		{"placeholders", one(Match{Name: str("${account}/${labels:team}-${type}-${service}-${name}")}, "pull"), nil},
		{"unknown placeholder", one(Match{Account: str("${foo}")}, "pull"), []wantErr{{"0.match.account", `unknown placeholder "${foo}"`}}},
		{"placeholder with spaces", one(Match{Name: str("${ account }")}, "pull"), []wantErr{{"0.match.name", "unknown placeholder"}}},
		{"empty label placeholder", one(Match{Name: str("${labels:}/*")}, "pull"), []wantErr{{"0.match.name", `malformed placeholder "${labels:}"`}}},
		{"bare labels placeholder", one(Match{Name: str("${labels}")}, "pull"), []wantErr{{"0.match.name", "malformed placeholder"}}},
		{"unterminated placeholder", one(Match{Name: str("${account/*")}, "pull"), []wantErr{{"0.match.name", "unterminated placeholder"}}},
		{"backslash before placeholder", one(Match{Name: str(`x\${account}`)}, "pull"), []wantErr{{"0.match.name", "backslash before a placeholder"}}},
		{"escaped backslash before placeholder", one(Match{Name: str(`x\\${account}`)}, "pull"), nil},
		{"placeholder glob bad", one(Match{Name: str("${account}[")}, "pull"), []wantErr{{"0.match.name", "invalid glob"}}},
		{"placeholder regex bad", one(Match{Name: str("/${account}(/")}, "pull"), []wantErr{{"0.match.name", "invalid regex"}}},
		{"capture", one(Match{Account: str(`/^(\w+)-dev$/`), Name: str("${account:1}/*")}, "pull"), nil},
		{"capture of literal", one(Match{Account: str("alice"), Name: str("${account:1}/*")}, "pull"), []wantErr{{"0.match.name", `needs match.account to be a /regex/, not "alice"`}}},
		{"capture of missing field", one(Match{Name: str("${account:1}/*")}, "pull"), []wantErr{{"0.match.name", "needs match.account to be a /regex/"}}},
		{"capture group out of range", one(Match{Account: str(`/^(\w+)$/`), Name: str("${account:2}")}, "pull"), []wantErr{{"0.match.name", "has 1 capture group"}}},
		{"capture of placeholder regex", one(Match{Account: str(`/^(${name})$/`), Name: str("${account:1}")}, "pull"), []wantErr{{"0.match.name", "without placeholders"}}},
		{"capture of itself", one(Match{Account: str(`/^(\w)${account:1}$/`)}, "pull"), []wantErr{{"0.match.account", "without placeholders"}}},
		{"capture of invalid regex", one(Match{Account: str(`/(/`), Name: str("${account:1}")}, "pull"), []wantErr{{"0.match.account", "invalid regex"}, {"0.match.name", "which is invalid"}}},
		{"capture malformed", one(Match{Name: str("${account:x}")}, "pull"), []wantErr{{"0.match.name", "malformed placeholder"}}},
		{"capture in label", one(Match{Name: str(`/^(\w+)\//`), Labels: labels("team", "${name:1}")}, "pull"), nil},
		{"capture in label bad", one(Match{Labels: labels("team", "${name:1}")}, "pull"), []wantErr{{"0.match.labels.team", "needs match.name"}}},
		{"errors from several rules", []Rule{
			{Match: &Match{}, Actions: acts("pull")},
			{Match: &Match{IP: str("nope"), Account: str("/(/")}, Actions: acts("pull")},
			{Match: &Match{}, Actions: acts("*")},
			{Match: &Match{Name: str("${x}")}},
		}, []wantErr{
			{"1.match.account", "invalid regex"}, {"1.match.ip", "invalid IP"},
			{"3.actions", "actions is required"}, {"3.match.name", "unknown placeholder"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := Compile(tt.rules)
			errs := cfgerr.Flatten(err)
			if len(errs) != len(tt.want) {
				t.Fatalf("Compile errors = %v, want %d", err, len(tt.want))
			}
			if err != nil && a != nil {
				t.Error("Compile returned an ACL with an error")
			}
			for i, e := range errs {
				var ce *cfgerr.Error
				if !errors.As(e, &ce) {
					t.Fatalf("error %d %v is not a *cfgerr.Error", i, e)
				}
				if p := strings.Join(ce.Path, "."); p != tt.want[i].path {
					t.Errorf("error %d path = %s, want %s (%v)", i, p, tt.want[i].path, e)
				}
				if !strings.Contains(ce.Err.Error(), tt.want[i].msg) {
					t.Errorf("error %d = %q, want it to contain %q", i, ce.Err, tt.want[i].msg)
				}
				if strings.HasPrefix(ce.Err.Error(), "acl: ") {
					t.Errorf("error %d %q carries an acl: prefix inside a cfgerr path", i, ce.Err)
				}
			}
		})
	}
}

// TestErrorKey checks the rendering the configuration loader shows.
func TestErrorKey(t *testing.T) {
	_, err := Compile([]Rule{{Match: &Match{}, Actions: acts()}, {Match: &Match{}, Actions: acts()}, {Match: &Match{IP: str("10.0.0.0/33")}, Actions: acts()}})
	got := cfgerr.At(err, "acl").Error()
	if want := `acl[2].match.ip: invalid IP or CIDR "10.0.0.0/33"`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestWarnings(t *testing.T) {
	tests := []struct {
		name  string
		rules []Rule
		want  []string
	}{
		{"unanchored literal", one(Match{Account: str("/admin/")}, "*"),
			[]string{`acl[0].match.account: regex "/admin/" is not anchored; it matches "notadmin" too (add ^ and $)`}},
		{"anchored", one(Match{Account: str(`/^admin$/`), Name: str(`/\A(a|b)\z/`), Type: str(`/^a$|^b$/`), Service: str(`/(?i)^x$/`)}, "*"), nil},
		{"anchored start only", []Rule{{Match: &Match{}, Actions: acts()}, {Match: &Match{Name: str(`/^team-/`)}, Actions: acts("pull")}},
			[]string{
				`acl[1].match.name: regex "/^team-/" is not anchored at the end; it matches "team-x" too (add ^ and $)`,
				`acl[0].match: an empty match matches every request; the 1 rule(s) after it are never reached`,
			}},
		{"dot-plus needs no anchors", one(Match{Account: str("/.+/"), Name: str("/.*-dev.*/")}, "*"), nil},
		{"leading dot-star anchors only the start", one(Match{Name: str("/.*-dev/")}, "pull"),
			[]string{`acl[0].match.name: regex "/.*-dev/" is not anchored at the end; it matches values that only contain a match too (add ^ and $)`}},
		{"anchored end only", one(Match{Name: str(`/(a|b)$/`)}, "pull"),
			[]string{`acl[0].match.name: regex "/(a|b)$/" is not anchored at the start; it matches values that only contain a match too (add ^ and $)`}},
		{"multiline is not anchored", one(Match{Name: str(`/(?m)^a$/`)}, "pull"),
			[]string{`acl[0].match.name: regex "/(?m)^a$/" is not anchored; it matches values that only contain a match too (add ^ and $)`}},
		{"placeholder regex", one(Match{Name: str(`/${account}/`)}, "pull"),
			[]string{`acl[0].match.name: regex "/${account}/" is not anchored; it matches values that only contain a match too (add ^ and $)`}},
		{"label regex", one(Match{Labels: map[string]string{"g": "/ops/"}}, "pull"),
			[]string{`acl[0].match.labels.g: regex "/ops/" is not anchored; it matches "notops" too (add ^ and $)`}},
		{"cidr host bits", one(Match{IP: str("10.1.2.3/8")}, "pull"),
			[]string{`acl[0].match.ip: CIDR "10.1.2.3/8" has host bits set; it means 10.0.0.0/8`}},
		{"unknown action", one(Match{}, "pul"),
			[]string{`acl[0].actions[0]: action "pul" is not one registries request (pull, push, delete, *); it is granted only when asked for verbatim`}},
		{"star with others", one(Match{}, "pull", "*"),
			[]string{`acl[0].actions[1]: "*" grants every requested action; the other actions listed add nothing`}},
		{"empty match last", []Rule{{Match: &Match{Account: str("a")}, Actions: acts("pull")}, {Match: &Match{}, Actions: acts()}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
			a := mustCompile(t, tt.rules, WithLogger(logger))
			if got := a.Warnings(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Warnings =\n%q\nwant\n%q", got, tt.want)
			}
			if n := strings.Count(buf.String(), "level=WARN"); n != len(tt.want) {
				t.Errorf("logged %d warnings, want %d:\n%s", n, len(tt.want), buf.String())
			}
		})
	}
}

func TestUnanchoredRegexStillMatches(t *testing.T) {
	a := mustCompile(t, one(Match{Account: str("/admin/")}, "*"))
	if d := a.Decide(&Request{Account: "notadmin", Actions: pull}); !d.Matched {
		t.Errorf("docker_auth semantics: /admin/ should match notadmin: %+v", d)
	}
}
