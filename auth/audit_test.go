package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// slogJSONLine is what slog.JSONHandler writes for a: the line the hand
// encoder must reproduce.
func slogJSONLine(t testing.TB, a *auditRecord) []byte {
	t.Helper()
	var buf bytes.Buffer
	r := slog.NewRecord(a.time, slog.LevelInfo, auditMessage, 0)
	r.AddAttrs(a.attrs()...)
	if err := slog.NewJSONHandler(&buf, nil).Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sampleAudit() auditRecord {
	return auditRecord{
		time:          time.Date(2026, 11, 23, 21, 37, 43, 62360191, time.UTC),
		outcome:       OutcomeIssued,
		account:       "alice",
		authenticator: "static",
		clientIP:      netip.MustParseAddr("127.0.0.1"),
		grant:         GrantPassword,
		clientID:      "docker",
		service:       "registry.example.com",
		decisions: []Decision{{
			Scope: "repository:alice/app:pull,push", Granted: "pull,push", Rule: 0, Comment: "own namespace",
		}},
		latency: 62768 * time.Nanosecond,
	}
}

func TestAuditJSONMatchesSlog(t *testing.T) {
	// Every byte class the two escapers treat specially, in each kind
	// of field.
	odd := "q\"b\\s/n\nr\rt\tb\bf\fz\x00\x1f<>&\u2028\u2029é\xff\xc3日本"
	tests := []struct {
		name string
		edit func(a *auditRecord)
	}{
		{"typical", func(*auditRecord) {}},
		{"anonymous, no client id, no ip", func(a *auditRecord) {
			a.account, a.grant, a.clientID, a.clientIP = "", "anonymous", "", netip.Addr{}
		}},
		{"IPv6 with zone-free address", func(a *auditRecord) { a.clientIP = netip.MustParseAddr("2001:db8::7") }},
		{"IPv4-mapped IPv6", func(a *auditRecord) { a.clientIP = netip.MustParseAddr("::ffff:10.0.0.1") }},
		{"no scopes", func(a *auditRecord) { a.decisions = []Decision{} }},
		{"several decisions, acl_mongo, refusal", func(a *auditRecord) {
			a.outcome = OutcomeDenied
			a.decisions = append(a.decisions,
				Decision{Scope: "repository:bob/x:pull", Granted: "", Rule: -1},
				Decision{Scope: "registry:catalog:*", Granted: "*", Rule: 42, ACL: "acl_mongo", Comment: "from mongo"},
				Decision{Scope: "repository:c:pull", Rule: 3, ACL: "acl_mongo"})
		}},
		{"refresh token issued, long latency", func(a *auditRecord) {
			a.refreshIssued, a.grant, a.latency = true, GrantRefresh, 3*time.Second+7
		}},
		{"an access token, with escapes in its name", func(a *auditRecord) {
			a.grant, a.tokenName, a.tokenID = GrantAccessToken, "ci "+odd, "Zx3_-aB"
		}},
		{"zero latency and a zone", func(a *auditRecord) {
			a.latency = 0
			a.time = time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("X", 5*3600+30*60))
		}},
		{"escapes in top-level strings", func(a *auditRecord) {
			a.account, a.authenticator, a.clientID, a.service = odd, odd, odd, odd
		}},
		{"escapes in decisions", func(a *auditRecord) {
			a.decisions = []Decision{{Scope: odd, Granted: odd, Rule: 1, Comment: odd, ACL: odd}}
		}},
		{"invalid UTF-8 only", func(a *auditRecord) { a.account = "\xff\xfe\xfd" }},
		{"truncated rune at the end", func(a *auditRecord) { a.decisions[0].Comment = "ok\xe6\x97" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := sampleAudit()
			tt.edit(&a)
			want := slogJSONLine(t, &a)
			got := a.appendJSON(nil)
			if !bytes.Equal(got, want) {
				t.Fatalf("hand-encoded line differs from slog's\n got: %s\nwant: %s", got, want)
			}
			if !json.Valid(bytes.TrimSuffix(got, []byte("\n"))) {
				t.Fatalf("not valid JSON: %s", got)
			}
		})
	}
}

// FuzzAuditJSON holds the encoder to slog's output for arbitrary strings.
func FuzzAuditJSON(f *testing.F) {
	f.Add("alice", "repository:alice/app:pull", "pull", "own namespace")
	f.Add("a\"\\\n\b\f\x01", "\u2028\u2029", "\xff", "<&>")
	f.Fuzz(func(t *testing.T, account, scope, granted, comment string) {
		a := sampleAudit()
		a.account, a.clientID = account, comment
		a.decisions = []Decision{{Scope: scope, Granted: granted, Comment: comment, ACL: account}}
		want := slogJSONLine(t, &a)
		if got := a.appendJSON(nil); !bytes.Equal(got, want) {
			t.Fatalf("hand-encoded line differs from slog's\n got: %q\nwant: %q", got, want)
		}
	})
}

func TestAuditLogWrite(t *testing.T) {
	tests := []struct {
		name   string
		level  slog.Level
		json   bool // the logger is a JSON handler
		direct bool // WithJSONAuditLog
		want   string
	}{
		{"json, written directly", slog.LevelInfo, true, true, `"msg":"token issued"`},
		{"json through the logger", slog.LevelInfo, true, false, `"msg":"token issued"`},
		{"text through the logger", slog.LevelInfo, false, false, `msg="token issued" outcome=issued account=alice`},
		{"json, level warn: nothing", slog.LevelWarn, true, true, ""},
		{"text, level warn: nothing", slog.LevelWarn, false, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logged, direct bytes.Buffer
			opts := &slog.HandlerOptions{Level: tt.level}
			var h slog.Handler = slog.NewTextHandler(&logged, opts)
			if tt.json {
				h = slog.NewJSONHandler(&logged, opts)
			}
			l := auditLog{logger: slog.New(h)}
			if tt.direct {
				l.w = &direct
			}
			a := sampleAudit()
			l.write(context.Background(), &a)
			out := logged.String() + direct.String()
			if tt.want == "" {
				if out != "" {
					t.Fatalf("logged below the level: %q", out)
				}
				return
			}
			if !strings.Contains(out, tt.want) || strings.Count(out, "\n") != 1 {
				t.Fatalf("want one line containing %q, got %q", tt.want, out)
			}
			if tt.direct && logged.Len() != 0 {
				t.Fatalf("direct audit line also went through the logger: %q", logged.String())
			}
			if tt.json && out != string(slogJSONLine(t, &a)) {
				t.Fatalf("json line %q differs from slog's %q", out, slogJSONLine(t, &a))
			}
		})
	}
}

// BenchmarkAuditLine compares the hand encoder with slog.JSONHandler for
// the typical line.
func BenchmarkAuditLine(b *testing.B) {
	a := sampleAudit()
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		l := auditLog{logger: slog.New(slog.NewJSONHandler(discard{}, nil)), w: discard{}}
		for b.Loop() {
			l.write(context.Background(), &a)
		}
	})
	b.Run("slog", func(b *testing.B) {
		b.ReportAllocs()
		l := auditLog{logger: slog.New(slog.NewJSONHandler(discard{}, nil))}
		for b.Loop() {
			l.write(context.Background(), &a)
		}
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
