package config

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/cfgerr"
)

// base is a valid configuration; cases append to or replace parts of it.
const base = `server:
  addr: ":5001"
token:
  issuer: "test issuer"
  expiration: 900
  certificate: /ssl/token.pem
  key: /ssl/token.key
users:
  "admin":
    password: "$2a$04$4uKsKXPXqj7SE5URbNMM0.fRrPtPQ4i5AbLhK3.WbeRMpW5P3n5HG"
  "": {}
acl:
  - match: {account: "admin"}
    actions: ["*"]
  - match: {account: "/.+/", name: "${account}/*"}
    actions: ["*"]
`

func parse(t *testing.T, yml string) (*Config, *Error) {
	t.Helper()
	c, err := Parse("auth_config.yml", []byte(yml))
	if err == nil {
		return c, nil
	}
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("error is %T, want *config.Error: %v", err, err)
	}
	return nil, ce
}

// sectionCase is a section appended to base (line 17 on) and the one
// problem it makes, if any.
type sectionCase struct {
	name    string
	section string
	line    int    // of the one problem; 0: valid
	key     string // of the problem
	msg     string // a fragment of its message
}

// testSections parses base with each case's section appended. A valid case
// must parse, and decoded (when not nil) checks what it gave; the others
// must give one problem, at that line of auth_config.yml, with that key and
// message.
func testSections(t *testing.T, tests []sectionCase, decoded func(*testing.T, *Config)) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, perr := parse(t, base+tc.section)
			if tc.line == 0 {
				if perr != nil {
					t.Fatal(perr)
				}
				if decoded != nil {
					decoded(t, c)
				}
				return
			}
			if perr == nil || len(perr.Problems) != 1 {
				t.Fatalf("want one problem, got %v", perr)
			}
			p := perr.Problems[0]
			if p.Key != tc.key || p.Line != tc.line || p.File != "auth_config.yml" || !strings.Contains(p.Msg, tc.msg) {
				t.Fatalf("problem %q (key %q line %d), want key %q line %d saying %q", p, p.Key, p.Line, tc.key, tc.line, tc.msg)
			}
		})
	}
}

func TestParseValid(t *testing.T) {
	c, perr := parse(t, base)
	if perr != nil {
		t.Fatal(perr)
	}
	if c.Server.Addr != ":5001" || c.Token.Expiration != 900 || len(c.Users) != 2 || len(c.ACL) != 2 {
		t.Fatalf("decoded %+v", c)
	}
	if *c.ACL[1].Match.Name != "${account}/*" || (*c.ACL[0].Actions)[0] != "*" {
		t.Fatalf("acl decoded wrong: %+v", c.ACL)
	}
}

func TestParseProblems(t *testing.T) {
	tests := []struct {
		name string
		yml  string
		// want lists "line|key|message fragment" for every problem, in order.
		want []string
	}{
		{
			name: "unknown top-level key",
			yml:  base + "acls: []\n",
			want: []string{"17|acls|unknown key"},
		},
		{
			name: "unknown key in an acl match, as docker_auth's docs show",
			yml:  strings.Replace(base, `{account: "admin"}`, `{team: "infrastructure"}`, 1),
			want: []string{"13|acl[0].match.team|unknown key"},
		},
		{
			name: "typo in server section",
			yml:  strings.Replace(base, `addr: ":5001"`, "addr: \":5001\"\n  adress: x", 1),
			want: []string{"3|server.adress|unknown key"},
		},
		{
			name: "wrong type",
			yml:  strings.Replace(base, "expiration: 900", "expiration: soon", 1),
			want: []string{"5|token.expiration|want a whole number"},
		},
		{
			name: "expiration too short",
			yml:  strings.Replace(base, "expiration: 900", "expiration: 30", 1),
			want: []string{"5|token.expiration|60"},
		},
		{
			name: "unsupported docker_auth sections",
			yml:  base + "plugin_authz:\n  plugin_path: /y.so\nplugin_authn:\n  plugin_path: /x.so\n",
			want: []string{"17|plugin_authz|cannot be loaded", "19|plugin_authn|cannot be loaded"},
		},
		{
			name: "xorm sections",
			yml: base + "xorm_auth:\n  database_type: oracle\n  conn_strng: x\n" +
				"acl_xorm:\n  database_type: mysql\n  conn_string: \"db:3306\"\n  cache_ttl: -1m\n",
			want: []string{"17|xorm_auth.conn_string|required", "18|xorm_auth.database_type|mysql, postgres or sqlite3",
				"19|xorm_auth.conn_strng|unknown key", "22|acl_xorm.conn_string|DSN", "23|acl_xorm.cache_ttl|positive"},
		},
		{
			name: "rule without actions and rule without match",
			yml:  base + "  - match: {account: bob}\n  - actions: [pull]\n",
			want: []string{"17|acl[2].actions|required", "18|acl[3].match|required"},
		},
		{
			name: "bad password hash",
			yml:  strings.Replace(base, `"$2a$04$4uKsKXPXqj7SE5URbNMM0.fRrPtPQ4i5AbLhK3.WbeRMpW5P3n5HG"`, `"plaintext"`, 1),
			want: []string{"10|users.admin.password|bcrypt"},
		},
		{
			name: "every problem reported together",
			yml: strings.NewReplacer("expiration: 900", "expiration: 10", `addr: ":5001"`, "addr: \":5001\"\n  net: udp").Replace(base) +
				"  - match: {ip: 10.0.0.0/33}\n    actions: [pull]\n",
			want: []string{"3|server.net|tcp or unix", "6|token.expiration|60", "18|acl[2].match.ip|"},
		},
		{
			name: "match keys without a value would match everyone",
			yml:  base + "  - match: {account: , name: \"x/*\"}\n    actions: [push]\n  - match:\n      labels: {group: }\n    actions: [pull]\n",
			want: []string{"17|acl[2].match.account|no value", "20|acl[3].match.labels.group|no value"},
		},
		{
			name: "cache and limits",
			yml:  base + "cache: {ttl: soon, max_entries: -1}\nlimits:\n  concurrent_checks: -2\n  check_wait: 1x\n",
			want: []string{"17|cache.ttl|want a duration", "17|cache.max_entries|negative", "19|limits.concurrent_checks|positive", "20|limits.check_wait|want a duration"},
		},
		{
			name: "cache max_bytes too small",
			yml:  base + "cache:\n  max_bytes: 4KiB\n",
			want: []string{"18|cache.max_bytes|at least 65536"},
		},
		{
			name: "cache max_bytes negative",
			yml:  base + "cache: {max_bytes: -1}\n",
			want: []string{"17|cache.max_bytes|at least"},
		},
		{
			name: "cache max_bytes not a size",
			yml:  base + "cache: {max_bytes: 32MB}\n",
			want: []string{"17|cache.max_bytes|want a size"},
		},
		{
			name: "throttle",
			yml:  base + "throttle: {ip_failures: -1, delay: 0s, max_delay: 1s}\n",
			want: []string{"17|throttle.ip_failures|positive", "17|throttle.delay|positive"},
		},
		{
			name: "unknown log level and format",
			yml:  base + "log: {level: verbose, format: xml}\n",
			want: []string{"17|log.level|debug, info", "17|log.format|text or json"},
		},
		{
			name: "unset environment variable",
			yml:  strings.Replace(base, `issuer: "test issuer"`, `issuer: "${env:GATEHOUSE_TEST_UNSET}"`, 1),
			want: []string{"4|token.issuer|GATEHOUSE_TEST_UNSET is not set"},
		},
		{
			name: "missing acl section",
			yml:  base[:strings.Index(base, "acl:")],
			want: []string{"1|acl|required"},
		},
		{
			name: "no authenticator",
			yml:  strings.Replace(base, "users:\n  \"admin\":\n    password: \"$2a$04$4uKsKXPXqj7SE5URbNMM0.fRrPtPQ4i5AbLhK3.WbeRMpW5P3n5HG\"\n  \"\": {}\n", "", 1),
			want: []string{"1|users|no authenticator"},
		},
		{
			name: "yaml syntax error names its line",
			yml:  base + "  - match: {account: [\n",
			want: []string{"17||invalid YAML: did not find expected node content"},
		},
		{
			name: "yaml syntax error on the first line names line 1",
			yml:  "\t" + base,
			want: []string{"1||invalid YAML: found character that cannot start any token"},
		},
		{
			name: "unknown alias names its line",
			yml:  base + "log: *nowhere\n",
			want: []string{"17||invalid YAML: unknown anchor 'nowhere' referenced"},
		},
		{
			name: "duplicated top-level section is one problem at the second one",
			yml:  strings.Replace(base, "token:", "log:\n  level: info\ntoken:", 1) + "log:\n  level: debug\n",
			want: []string{"19|log|duplicate key: already defined at line 3"},
		},
		{
			name: "duplicated nested keys, each one problem",
			yml: strings.NewReplacer(
				"  expiration: 900\n", "  expiration: 900\n  issuer: again\n",
				"  \"\": {}\n", "  \"\": {}\n  admin: {password: x}\n",
				`{account: "admin"}`, `{account: "admin", account: "root"}`,
			).Replace(base),
			want: []string{
				"6|token.issuer|duplicate key: already defined at line 4",
				"13|users.admin|already defined at line 10",
				"15|acl[0].match.account|already defined at line 15",
			},
		},
		{
			name: "not a mapping",
			yml:  "- a\n- b\n",
			want: []string{"1||YAML mapping"},
		},
		{
			name: "empty file",
			yml:  "",
			want: []string{"1||YAML mapping"},
		},
		{
			name: "path_prefix without slash and lone real_ip_pos",
			yml:  strings.Replace(base, `addr: ":5001"`, "addr: \":5001\"\n  path_prefix: auth\n  real_ip_pos: -1", 1),
			want: []string{"3|server.path_prefix|start with /", "4|server.real_ip_pos|real_ip_header"},
		},
		{
			name: "negative max_connections",
			yml:  strings.Replace(base, `addr: ":5001"`, "addr: \":5001\"\n  max_connections: -1", 1),
			want: []string{"3|server.max_connections|must be positive"},
		},
		{
			name: "letsencrypt is refused",
			yml:  strings.Replace(base, `addr: ":5001"`, "addr: \":5001\"\n  letsencrypt: {email: a@b.c}", 1),
			want: []string{"3|server.letsencrypt|not supported"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, perr := parse(t, tc.yml)
			checkProblems(t, perr, tc.want)
		})
	}
}

// checkProblems checks that perr lists exactly the problems want describes,
// in order, each as "line|key|message fragment", in auth_config.yml.
func checkProblems(t *testing.T, perr *Error, want []string) {
	t.Helper()
	if perr == nil {
		t.Fatal("no error")
	}
	if len(perr.Problems) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(perr.Problems), len(want), perr)
	}
	for i, w := range want {
		parts := strings.SplitN(w, "|", 3)
		if len(parts) != 3 {
			t.Fatalf("want %q is not line|key|message", w)
		}
		p := perr.Problems[i]
		if line, _ := strconv.Atoi(parts[0]); p.Line != line || line < 1 {
			t.Errorf("problem %d = %q: line %d, want %s", i, p, p.Line, parts[0])
		}
		if prefix := "auth_config.yml:" + parts[0] + ": "; !strings.HasPrefix(p.String(), prefix) {
			t.Errorf("problem %d = %q, want it to start with %q", i, p, prefix)
		}
		if p.Key != parts[1] {
			t.Errorf("problem %d key = %q, want %q (%s)", i, p.Key, parts[1], p)
		}
		if !strings.Contains(p.Msg, parts[2]) {
			t.Errorf("problem %d message = %q, want it to contain %q", i, p.Msg, parts[2])
		}
		if p.File != "auth_config.yml" {
			t.Errorf("problem %d file = %q", i, p.File)
		}
	}
}

func TestTokenFallsBackToServerKeyPair(t *testing.T) {
	yml := strings.NewReplacer(
		"  certificate: /ssl/token.pem\n  key: /ssl/token.key\n", "",
		`addr: ":5001"`, "addr: \":5001\"\n  certificate: /ssl/server.pem\n  key: /ssl/server.key",
	).Replace(base)
	c, perr := parse(t, yml)
	if perr != nil {
		t.Fatal(perr)
	}
	if c.Token.Certificate != "/ssl/server.pem" || c.Token.Key != "/ssl/server.key" {
		t.Fatalf("token key pair = %q %q", c.Token.Certificate, c.Token.Key)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "auth_config.yml")
	if err := os.WriteFile(p, []byte(base), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.File() != p {
		t.Fatalf("File() = %q", c.File())
	}
	_, err = Load(filepath.Join(dir, "absent.yml"))
	if err == nil || !strings.Contains(err.Error(), "absent.yml") || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestAnnotate(t *testing.T) {
	c, perr := parse(t, base)
	if perr != nil {
		t.Fatal(perr)
	}
	if c.Annotate(nil) != nil {
		t.Fatal("nil error annotated")
	}
	err := c.Annotate(errors.Join(
		cfgerr.At(errors.New("cannot read"), "token", "key"),
		cfgerr.At(errors.New("nope"), "acl", "1", "match", "name"),
		cfgerr.At(errors.New("deep"), "users", "admin", "labels", "absent"),
	))
	want := "auth_config.yml:7: token.key: cannot read\n" +
		"auth_config.yml:9: users.admin.labels.absent: deep\n" +
		"auth_config.yml:15: acl[1].match.name: nope"
	if err.Error() != want {
		t.Fatalf("got\n%s\nwant\n%s", err, want)
	}
}

func TestEnvironment(t *testing.T) {
	t.Setenv("GH_TEST_ISSUER", "from the environment")
	t.Setenv("GH_TEST_DIR", "/run/secrets")
	yml := strings.NewReplacer(
		`issuer: "test issuer"`, `issuer: "${env:GH_TEST_ISSUER}"`,
		"key: /ssl/token.key", "key: ${env:GH_TEST_DIR}/token.key",
		`name: "${account}/*"`, `name: "${account}/*"`,
	).Replace(base) + "log: {level: debug, format: json}\n"
	c, perr := parse(t, yml)
	if perr != nil {
		t.Fatal(perr)
	}
	if c.Token.Issuer != "from the environment" || c.Token.Key != "/run/secrets/token.key" {
		t.Fatalf("token %+v", c.Token)
	}
	if *c.ACL[1].Match.Name != "${account}/*" {
		t.Fatalf("an ACL placeholder was touched: %q", *c.ACL[1].Match.Name)
	}
	if c.Log.SlogLevel().String() != "DEBUG" || c.Log.Format != "json" {
		t.Fatalf("log %+v", c.Log)
	}
}

func TestDurations(t *testing.T) {
	c, perr := parse(t, base+"cache: {ttl: 90}\nlimits: {check_wait: 1m30s}\n")
	if perr != nil {
		t.Fatal(perr)
	}
	if c.Cache.TTL.Or(0) != 90*time.Second || c.Limits.CheckWait.Or(0) != 90*time.Second {
		t.Fatalf("cache %v limits %v", c.Cache.TTL, c.Limits.CheckWait)
	}
	c, _ = parse(t, base+"cache: {ttl: 0}\n")
	if c.Cache.TTL.Or(DefaultCacheTTL) != 0 {
		t.Fatal("ttl: 0 must turn the cache off, not take the default")
	}
	c, _ = parse(t, base)
	if c.Cache.TTL.Or(DefaultCacheTTL) != DefaultCacheTTL || c.Cache.Entries() != DefaultCacheMaxEntries || c.Limits.Checks() < 1 ||
		c.Cache.Bytes() != DefaultCacheMaxBytes {
		t.Fatal("defaults")
	}
}

func TestByteSize(t *testing.T) {
	tests := []struct {
		name, value string
		want        int64 // -1: refused
	}{
		{"plain bytes", "1048576", 1 << 20},
		{"KiB", "512KiB", 512 << 10},
		{"MiB", "32MiB", 32 << 20},
		{"GiB with a space", "2 GiB", 2 << 30},
		{"B", "65536B", 65536},
		{"decimal unit refused", "32MB", -1},
		{"fraction refused", "1.5MiB", -1},
		{"no number", "MiB", -1},
		{"overflow", "9000000000GiB", -1},
		{"a list", "[1]", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, perr := parse(t, base+"cache: {max_bytes: "+tt.value+"}\n")
			if tt.want < 0 {
				if perr == nil || !strings.Contains(perr.Error(), "cache.max_bytes") {
					t.Fatalf("%q accepted (%v)", tt.value, perr)
				}
				return
			}
			if perr != nil {
				t.Fatal(perr)
			}
			if got := c.Cache.Bytes(); got != tt.want {
				t.Fatalf("%q: %d bytes, want %d", tt.value, got, tt.want)
			}
		})
	}
}
