package token

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// claims mirrors the claims appendClaims writes, for encoding/json.
type claims struct {
	Iss    string   `json:"iss"`
	Sub    string   `json:"sub"`
	Aud    string   `json:"aud"`
	Exp    int64    `json:"exp"`
	Nbf    int64    `json:"nbf"`
	Iat    int64    `json:"iat"`
	Jti    string   `json:"jti"`
	Access []Access `json:"access"`
}

// encodingJSON marshals v as encoding/json does with HTML escaping off.
func encodingJSON(t testing.TB, v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

func TestAppendClaimsMatchesEncodingJSON(t *testing.T) {
	s := &Signer{issuer: "Acme \"auth\" server\u2029"}
	if err := s.precompute(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		sub    string
		aud    string
		access []Access
	}{
		{name: "no access", sub: "", aud: "registry"},
		{name: "one scope", sub: "alice", aud: "registry.example.com:5000",
			access: []Access{{Type: "repository", Name: "alice/app", Actions: []string{"pull", "push"}}}},
		{name: "several scopes unsorted", sub: "bob", aud: "r",
			access: []Access{{Type: "repository", Name: "a", Actions: []string{"push", "delete", "pull"}}, {Type: "registry", Name: "catalog", Actions: []string{"*"}}, {Type: "repository", Name: "denied"}}},
		{name: "escapes everywhere", sub: "\x00\x1f\"\\/<>&\u2028\u2029\xc3\x28é😀\b\f\n\r\t", aud: "\x7f",
			access: []Access{{Type: "t\n", Name: "n\xff", Actions: []string{"b\"", "a\\"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const iat = 1780315200
			jti := "AAECAwQFBgcICQoLDA0ODw"
			got := s.appendClaims(nil, tt.sub, tt.aud, iat, iat+900, []byte(jti), tt.access)
			want := claims{Iss: s.issuer, Sub: tt.sub, Aud: tt.aud, Exp: iat + 900, Nbf: iat - 10, Iat: iat, Jti: jti, Access: []Access{}}
			for _, a := range tt.access {
				a.Actions = slices.Sorted(slices.Values(a.Actions))
				if a.Actions == nil {
					a.Actions = []string{}
				}
				want.Access = append(want.Access, a)
			}
			if w := encodingJSON(t, want); !bytes.Equal(got, w) {
				t.Errorf("appendClaims:\n got %s\nwant %s", got, w)
			}
		})
	}
}

func TestAppendRawECDSA(t *testing.T) {
	tests := []struct {
		name string
		der  []byte
		size int
		want []byte // nil: error
	}{
		{name: "full length", der: []byte{0x30, 6, 0x02, 1, 0x7f, 0x02, 1, 0x01}, size: 1, want: []byte{0x7f, 0x01}},
		{name: "sign byte stripped", der: []byte{0x30, 8, 0x02, 2, 0x00, 0x80, 0x02, 2, 0x00, 0xff}, size: 1, want: []byte{0x80, 0xff}},
		{name: "short integers padded", der: []byte{0x30, 6, 0x02, 1, 0x05, 0x02, 1, 0x06}, size: 3, want: []byte{0, 0, 5, 0, 0, 6}},
		{name: "zero", der: []byte{0x30, 6, 0x02, 1, 0x00, 0x02, 1, 0x00}, size: 2, want: []byte{0, 0, 0, 0}},
		{name: "long-form length", der: append([]byte{0x30, 0x81, 6}, 0x02, 1, 0x01, 0x02, 1, 0x02), size: 1, want: []byte{1, 2}},
		{name: "integer too long", der: []byte{0x30, 7, 0x02, 2, 0x01, 0x02, 0x02, 1, 0x01}, size: 1},
		{name: "s too long", der: []byte{0x30, 7, 0x02, 1, 0x01, 0x02, 2, 0x01, 0x02}, size: 1},
		{name: "trailing data", der: []byte{0x30, 6, 0x02, 1, 0x01, 0x02, 1, 0x01, 0x00}, size: 1},
		{name: "extra element", der: []byte{0x30, 9, 0x02, 1, 0x01, 0x02, 1, 0x01, 0x02, 1, 0x01}, size: 1},
		{name: "wrong tag", der: []byte{0x31, 6, 0x02, 1, 0x01, 0x02, 1, 0x01}, size: 1},
		{name: "truncated", der: []byte{0x30, 6, 0x02, 1, 0x01, 0x02, 1}, size: 1},
		{name: "unsupported length form", der: []byte{0x30, 0x82, 0, 6, 0x02, 1, 0x01, 0x02, 1, 0x01}, size: 1},
		{name: "empty", der: nil, size: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := appendRawECDSA([]byte("x"), tt.der, tt.size)
			if tt.want == nil {
				if err == nil || string(got) != "x" {
					t.Errorf("got %x, %v; want x unchanged and an error", got, err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, append([]byte("x"), tt.want...)) {
				t.Errorf("got %x, %v; want x%x", got, err, tt.want)
			}
		})
	}
}

// TestIssueKeepsBuffersSmall: a huge token is not kept in the pool.
func TestIssueKeepsBuffersSmall(t *testing.T) {
	s := testSigner(t, testKey(t, "p256"), nil)
	huge := []Access{{Type: "repository", Name: strings.Repeat("n", 2*maxPooled)}}
	if _, err := s.Issue("", "reg", huge); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		b := s.pool.Get().(*buffers)
		if cap(b.out) > maxPooled {
			t.Fatalf("pooled buffer of %d bytes", cap(b.out))
		}
	}
}
