package auth

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name    string
		query   string
		headers map[string][]string
		ipc     clientIPConfig
		remote  string
		check   func(t *testing.T, r *Request)
		status  int    // expected error status, 0 for success
		errText string // fragment of the error message
	}{
		{
			name:    "login without scope",
			query:   "service=registry&account=alice&client_id=docker&offline_token=true",
			headers: map[string][]string{"Authorization": {basic("alice", "pw")}},
			check: func(t *testing.T, r *Request) {
				if r.Account != "alice" || r.Password != "pw" || !r.HasCredentials || !r.Offline || r.ClientID != "docker" || len(r.Scopes) != 0 {
					t.Fatalf("%+v", r)
				}
				if r.IP != netip.MustParseAddr("192.0.2.1") {
					t.Fatalf("ip %v", r.IP)
				}
			},
		},
		{
			name:  "anonymous",
			query: "service=registry&scope=repository:public/app:pull",
			check: func(t *testing.T, r *Request) {
				if r.HasCredentials || r.Account != "" || len(r.Scopes) != 1 {
					t.Fatalf("%+v", r)
				}
			},
		},
		{
			name:    "empty basic credentials are anonymous",
			query:   "service=registry",
			headers: map[string][]string{"Authorization": {basic("", "")}},
			check: func(t *testing.T, r *Request) {
				if r.HasCredentials {
					t.Fatalf("%+v", r)
				}
			},
		},
		{
			name:    "password may contain colons",
			query:   "service=registry",
			headers: map[string][]string{"Authorization": {basic("alice", "a:b:c")}},
			check: func(t *testing.T, r *Request) {
				if r.Password != "a:b:c" {
					t.Fatalf("%+v", r)
				}
			},
		},
		{
			name:    "account differs from user",
			query:   "service=registry&account=admin",
			headers: map[string][]string{"Authorization": {basic("alice", "pw")}},
			status:  400, errText: "does not match",
		},
		{name: "missing service", query: "scope=repository:a:pull", status: 400, errText: "service"},
		{name: "bad offline_token", query: "service=r&offline_token=maybe", status: 400, errText: "offline_token"},
		{name: "bad scope", query: "service=r&scope=repository", status: 400, errText: "invalid scope"},
		{name: "malformed query", query: "service=r&scope=%zz", status: 400, errText: "malformed query"},
		{name: "query too long", query: "service=r&scope=" + strings.Repeat("a", MaxQueryLength), status: 400, errText: "too long"},
		{name: "headers too large", query: "service=r", headers: map[string][]string{"X-Padding": {strings.Repeat("p", MaxHeaderLength)}}, status: 400, errText: "headers too large"},
		{
			name: "bearer instead of basic", query: "service=r",
			headers: map[string][]string{"Authorization": {"Bearer abc"}},
			status:  400, errText: "Basic",
		},
		{
			name: "broken base64", query: "service=r",
			headers: map[string][]string{"Authorization": {"Basic !!!"}},
			status:  400, errText: "Basic",
		},
		{
			name: "no colon in credentials", query: "service=r",
			headers: map[string][]string{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("alice"))}},
			status:  400, errText: "Basic",
		},
		{
			name: "control character in user: refused later, as a wrong credential", query: "service=r",
			headers: map[string][]string{"Authorization": {basic("al\nice", "pw")}},
			check: func(t *testing.T, r *Request) {
				if !r.malformedAccount || !r.HasCredentials {
					t.Fatalf("%+v", r)
				}
			},
		},
		{
			name: "space around the user", query: "service=r",
			headers: map[string][]string{"Authorization": {basic("alice ", "pw")}},
			check: func(t *testing.T, r *Request) {
				if !r.malformedAccount {
					t.Fatalf("%+v", r)
				}
			},
		},
		{
			name: "a plain user", query: "service=r",
			headers: map[string][]string{"Authorization": {basic("Alice Smith", "pw")}},
			check: func(t *testing.T, r *Request) {
				if r.malformedAccount {
					t.Fatalf("%+v", r)
				}
			},
		},
		{
			name: "two authorization headers", query: "service=r",
			headers: map[string][]string{"Authorization": {basic("a", "b"), basic("c", "d")}},
			status:  400, errText: "more than one",
		},
		{
			name: "real ip from the last entry", query: "service=r",
			headers: map[string][]string{"X-Forwarded-For": {"203.0.113.9, 198.51.100.7"}},
			ipc:     clientIPConfig{header: "X-Forwarded-For", pos: -1},
			check: func(t *testing.T, r *Request) {
				if r.IP != netip.MustParseAddr("198.51.100.7") {
					t.Fatalf("ip %v", r.IP)
				}
			},
		},
		{
			name: "real ip from the first entry across repeated headers", query: "service=r",
			headers: map[string][]string{"X-Forwarded-For": {"2001:db8::1", "198.51.100.7"}},
			ipc:     clientIPConfig{header: "X-Forwarded-For", pos: 0},
			check: func(t *testing.T, r *Request) {
				if r.IP != netip.MustParseAddr("2001:db8::1") {
					t.Fatalf("ip %v", r.IP)
				}
			},
		},
		{
			name: "real ip position out of range", query: "service=r",
			headers: map[string][]string{"X-Forwarded-For": {"203.0.113.9"}},
			ipc:     clientIPConfig{header: "X-Forwarded-For", pos: -2},
			status:  400, errText: "position -2",
		},
		{
			name: "real ip header missing", query: "service=r",
			ipc:    clientIPConfig{header: "X-Real-Ip"},
			status: 400, errText: "missing X-Real-Ip",
		},
		{
			name: "real ip malformed", query: "service=r",
			headers: map[string][]string{"X-Real-Ip": {"not-an-ip"}},
			ipc:     clientIPConfig{header: "X-Real-Ip"},
			status:  400, errText: "not an IP",
		},
		{
			name: "ipv4-mapped peer is unmapped", query: "service=r", remote: "[::ffff:10.1.2.3]:4000",
			check: func(t *testing.T, r *Request) {
				if r.IP != netip.MustParseAddr("10.1.2.3") {
					t.Fatalf("ip %v", r.IP)
				}
			},
		},
		{
			name: "unix socket peer has no address", query: "service=r", remote: "@",
			check: func(t *testing.T, r *Request) {
				if r.IP.IsValid() {
					t.Fatalf("ip %v", r.IP)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hr := httptest.NewRequest(http.MethodGet, "/auth?"+tc.query, nil)
			hr.RemoteAddr = "192.0.2.1:1234"
			if tc.remote != "" {
				hr.RemoteAddr = tc.remote
			}
			for k, vs := range tc.headers {
				for _, v := range vs {
					hr.Header.Add(k, v)
				}
			}
			req, e := parseRequest(hr, tc.ipc, false)
			if tc.status != 0 {
				if e == nil {
					t.Fatalf("no error, request %+v", req)
				}
				if e.Status != tc.status || !strings.Contains(e.Message, tc.errText) {
					t.Fatalf("error %v, want status %d mentioning %q", e, tc.status, tc.errText)
				}
				return
			}
			if e != nil {
				t.Fatal(e)
			}
			tc.check(t, req)
		})
	}
}

func TestPlainAccount(t *testing.T) {
	tests := []struct {
		name, account string
		plain         bool
	}{
		{"ascii", "alice", true},
		{"inner space", "alice smith", true},
		{"e-mail", "bob@example.com", true},
		{"non-ascii letters", "zoë.müller", true},
		{"empty: no name", "", true},
		{"leading space", " bob", false},
		{"trailing space", "bob ", false},
		{"leading tab", "\tbob", false},
		{"trailing newline", "bob\n", false},
		{"NUL inside", "b\x00ob", false},
		{"DEL inside", "bo\x7fb", false},
		{"trailing no-break space", "bob\u00a0", false},
		{"leading ideographic space", "\u3000bob", false},
		{"C1 control (NEL)", "bo\u0085b", false},
		{"zero-width space (format)", "bob\u200b", false},
		{"right-to-left override (format)", "\u202ebob", false},
		{"soft hyphen (format)", "b\u00adob", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := plainAccount(tt.account); got != tt.plain {
				t.Fatalf("plainAccount(%q) = %v, want %v", tt.account, got, tt.plain)
			}
		})
	}
}
