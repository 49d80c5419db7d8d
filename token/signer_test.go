package token

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// verify checks raw with golang-jwt against s's public key and algorithm
// at the fixed clock.
func verify(s *Signer, raw string) (*jwt.Token, error) {
	return jwt.Parse(raw, func(*jwt.Token) (any, error) { return s.PublicKey(), nil },
		jwt.WithValidMethods([]string{s.Algorithm()}), jwt.WithTimeFunc(fixedClock),
		jwt.WithIssuer(s.Issuer()), jwt.WithIssuedAt(), jwt.WithExpirationRequired(), jwt.WithStrictDecoding())
}

// parsedToken is a token checked by golang-jwt plus its raw JSON parts.
type parsedToken struct {
	header map[string]any
	claims jwt.MapClaims
	raw    map[string]json.RawMessage // payload members, undecoded
}

// parse verifies raw and decodes its header and payload.
func parse(t *testing.T, s *Signer, raw string) parsedToken {
	t.Helper()
	tok, err := verify(s, raw)
	if err != nil {
		t.Fatalf("golang-jwt rejects the token: %v", err)
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 || strings.ContainsAny(raw, "=+/") {
		t.Fatalf("not a compact JWS with unpadded base64url parts: %q", raw)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(payload, &members); err != nil {
		t.Fatal(err)
	}
	return parsedToken{header: tok.Header, claims: tok.Claims.(jwt.MapClaims), raw: members}
}

func TestIssueHeader(t *testing.T) {
	no, yes := false, true
	tests := []struct {
		name    string
		key     string
		kid     string
		legacy  bool
		x5c     *bool
		wantAlg string
		wantKID func(*Signer) string
	}{
		{name: "ES256 defaults", key: "p256", wantAlg: "ES256", wantKID: func(s *Signer) string { k, _ := LibtrustKeyID(s.PublicKey()); return k }},
		{name: "ES384 thumbprint", key: "p384", kid: KIDThumbprint, wantAlg: "ES384", wantKID: func(s *Signer) string { k, _ := ThumbprintKeyID(s.PublicKey()); return k }},
		{name: "ES512 disable_legacy_key_id", key: "p521", legacy: true, x5c: &yes, wantAlg: "ES512",
			wantKID: func(s *Signer) string { k, _ := ThumbprintKeyID(s.PublicKey()); return k }},
		{name: "RS256 libtrust no x5c", key: "rsa2048", kid: KIDLibtrust, x5c: &no, wantAlg: "RS256",
			wantKID: func(s *Signer) string { k, _ := LibtrustKeyID(s.PublicKey()); return k }},
		{name: "RS256 kid none", key: "rsa2048", kid: KIDNone, wantAlg: "RS256", wantKID: func(*Signer) string { return "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testSigner(t, testKey(t, tt.key), func(c *Config) { c.KID, c.DisableLegacyKeyID, c.X5C = tt.kid, tt.legacy, tt.x5c })
			tok, err := s.Issue("alice", "registry.example.com", nil)
			if err != nil {
				t.Fatal(err)
			}
			h := parse(t, s, tok.Raw).header
			if h["typ"] != "JWT" || h["alg"] != tt.wantAlg || s.Algorithm() != tt.wantAlg {
				t.Errorf("typ, alg = %v, %v; Algorithm() = %q; want JWT, %s", h["typ"], h["alg"], s.Algorithm(), tt.wantAlg)
			}
			wantKID := tt.wantKID(s)
			if kid, ok := h["kid"]; wantKID == "" && ok {
				t.Errorf("kid = %v, want none", kid)
			} else if wantKID != "" && kid != wantKID {
				t.Errorf("kid = %v, want %q", kid, wantKID)
			}
			if s.KeyID() != wantKID {
				t.Errorf("KeyID() = %q, want %q", s.KeyID(), wantKID)
			}
			x5c, ok := h["x5c"].([]any)
			if tt.x5c != nil && !*tt.x5c {
				if _, present := h["x5c"]; present {
					t.Errorf("x5c present with x5c: false")
				}
				return
			}
			certs := s.Certificates()
			if !ok || len(x5c) != len(certs) {
				t.Fatalf("x5c = %v, want %d certificates", h["x5c"], len(certs))
			}
			for i, c := range certs {
				der, err := base64.StdEncoding.DecodeString(x5c[i].(string))
				if err != nil || !bytes.Equal(der, c.Raw) {
					t.Errorf("x5c[%d] is not the std-base64 DER of certificate %d (%v)", i, i, err)
				}
			}
		})
	}
}

func TestIssueClaims(t *testing.T) {
	s := testSigner(t, testKey(t, "p256"), nil)
	pushPull := []string{"push", "pull"}
	tests := []struct {
		name       string
		subject    string
		audience   string
		access     []Access
		wantAccess string
	}{
		{name: "anonymous, no access", subject: "", audience: "registry.example.com", wantAccess: `[]`},
		{name: "empty non-nil access", subject: "bob", audience: "reg", access: []Access{}, wantAccess: `[]`},
		{name: "actions sorted", subject: "alice", audience: "registry.example.com",
			access:     []Access{{Type: "repository", Name: "alice/app", Actions: pushPull}, {Type: "registry", Name: "catalog", Actions: []string{"*"}}},
			wantAccess: `[{"type":"repository","name":"alice/app","actions":["pull","push"]},{"type":"registry","name":"catalog","actions":["*"]}]`},
		{name: "denied scope has empty actions", subject: "alice", audience: "reg",
			access:     []Access{{Type: "repository", Name: "host:5000/x/y"}},
			wantAccess: `[{"type":"repository","name":"host:5000/x/y","actions":[]}]`},
		{name: "strings needing escapes", subject: "a\"b\\c\n\u2028é\xff<&>", audience: "aud\x01",
			access:     []Access{{Type: "repository", Name: "n\"", Actions: []string{"\t"}}},
			wantAccess: `[{"type":"repository","name":"n\"","actions":["\t"]}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := s.Issue(tt.subject, tt.audience, tt.access)
			if err != nil {
				t.Fatal(err)
			}
			p := parse(t, s, tok.Raw)
			iat := testNow.Unix()
			for name, want := range map[string]string{
				"iss": `"test issuer"`, "exp": itoa(iat + 900), "nbf": itoa(iat - 10), "iat": itoa(iat),
				"jti": `"` + tok.ID + `"`, "access": tt.wantAccess,
			} {
				if got := string(p.raw[name]); got != want {
					t.Errorf("%s = %s, want %s", name, got, want)
				}
			}
			// sub and aud: present, JSON strings (aud never an array), equal to the input
			// with invalid UTF-8 replaced as encoding/json does.
			for name, want := range map[string]string{"sub": tt.subject, "aud": tt.audience} {
				raw, ok := p.raw[name]
				var got string
				if !ok || raw[0] != '"' || json.Unmarshal(raw, &got) != nil || got != strings.ToValidUTF8(want, "\uFFFD") {
					t.Errorf("%s = %s (present %v), want the JSON string of %q", name, raw, ok, want)
				}
			}
			if len(p.raw) != 8 {
				t.Errorf("payload has %d members, want 8: %v", len(p.raw), p.raw)
			}
			if !tok.IssuedAt.Equal(testNow) || !tok.ExpiresAt.Equal(testNow.Add(15*time.Minute)) || tok.IssuedAt.Location() != time.UTC {
				t.Errorf("IssuedAt, ExpiresAt = %v, %v", tok.IssuedAt, tok.ExpiresAt)
			}
		})
	}
	if !slices.Equal(pushPull, []string{"push", "pull"}) {
		t.Errorf("Issue sorted the caller's actions in place: %q", pushPull)
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// TestIssueIATNotInFuture: a clock with sub-second precision must not
// yield an iat after the current time (zot verifies iat with no leeway).
func TestIssueIATNotInFuture(t *testing.T) {
	now := testNow.Add(999 * time.Millisecond)
	s := testSigner(t, testKey(t, "p256"), nil)
	WithClock(func() time.Time { return now })(s)
	tok, err := s.Issue("", "reg", nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok.IssuedAt.After(now) || !tok.IssuedAt.Equal(testNow) {
		t.Errorf("IssuedAt = %v at %v", tok.IssuedAt, now)
	}
}

// TestIssueConcurrent issues tokens from several goroutines (run with
// -race): every token verifies and every jti is distinct. With P-256 and
// P-521 it also exercises the ASN.1 to r||s conversion on signatures whose r
// or s is short.
func TestIssueConcurrent(t *testing.T) {
	for _, key := range []string{"p256", "p521"} {
		t.Run(key, func(t *testing.T) {
			s := testSigner(t, testKey(t, key), nil)
			const workers, each = 8, 100
			var mu sync.Mutex
			seen := map[string]bool{}
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for i := range each {
						tok, err := s.Issue("alice", "reg", []Access{{Type: "repository", Name: "a", Actions: []string{"push", "pull"}}})
						if err != nil {
							t.Error(err)
							return
						}
						if w == 0 || i%10 == 0 {
							if _, err := verify(s, tok.Raw); err != nil {
								t.Errorf("golang-jwt rejects %s: %v", tok.Raw, err)
							}
						}
						mu.Lock()
						if seen[tok.ID] {
							t.Errorf("jti %q issued twice", tok.ID)
						}
						seen[tok.ID] = true
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			if len(seen) != workers*each {
				t.Errorf("%d distinct jti, want %d", len(seen), workers*each)
			}
			for id := range seen {
				if b, err := base64.RawURLEncoding.DecodeString(id); err != nil || len(b) != 16 {
					t.Fatalf("jti %q is not 128 bits of base64url", id)
				}
			}
		})
	}
}
