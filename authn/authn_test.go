package authn

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse/gatehouse/internal/cfgerr"
)

func mustHash(t *testing.T, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func ptr(s string) *string { return &s }

func TestStaticValidate(t *testing.T) {
	good := mustHash(t, "pw")
	tests := []struct {
		name    string
		cfg     StaticConfig
		wantKey []string // paths of the expected errors, "" when valid
	}{
		{"valid users and anonymous", StaticConfig{"alice": {Password: ptr(good)}, "": {}}, nil},
		{"missing password", StaticConfig{"alice": {}}, []string{"alice.password"}},
		{"empty password", StaticConfig{"alice": {Password: ptr("")}}, []string{"alice.password"}},
		{"plain text password", StaticConfig{"alice": {Password: ptr("secret")}}, []string{"alice.password"}},
		{"md5 htpasswd hash", StaticConfig{"alice": {Password: ptr("$apr1$abc$def")}}, []string{"alice.password"}},
		{"anonymous with password", StaticConfig{"": {Password: ptr(good)}}, []string{".password"}},
		{"empty label value", StaticConfig{"alice": {Password: ptr(good), Labels: Labels{"group": {""}}}}, []string{"alice.labels.group"}},
		{"all problems at once", StaticConfig{"a": {}, "b": {Password: ptr("x")}}, []string{"a.password", "b.password"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			var got []string
			for _, e := range cfgerr.Flatten(err) {
				var ce *cfgerr.Error
				if !errors.As(e, &ce) {
					t.Fatalf("error without a key: %v", e)
				}
				got = append(got, strings.Join(ce.Path, "."))
			}
			if !reflect.DeepEqual(got, tc.wantKey) {
				t.Fatalf("error keys = %q, want %q (err: %v)", got, tc.wantKey, err)
			}
		})
	}
}

func TestStaticAuthenticate(t *testing.T) {
	s, err := NewStatic(StaticConfig{
		"alice": {Password: ptr(mustHash(t, "alicepw")), Labels: Labels{"group": {"dev"}}},
		"":      {Labels: Labels{"kind": {"anonymous"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		account    string
		password   string
		wantErr    error
		wantLabels Labels
	}{
		{"right password", "alice", "alicepw", nil, Labels{"group": {"dev"}}},
		{"wrong password", "alice", "nope", ErrWrongPassword, nil},
		{"empty password", "alice", "", ErrWrongPassword, nil},
		{"unknown account", "mallory", "x", ErrNoMatch, nil},
		{"anonymous", "", "", nil, Labels{"kind": {"anonymous"}}},
		{"anonymous with a password", "", "x", ErrWrongPassword, nil},
		{"case matters", "Alice", "alicepw", ErrNoMatch, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			acct, err := s.Authenticate(context.Background(), tc.account, tc.password)
			labels := acct.Labels
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if !reflect.DeepEqual(labels, tc.wantLabels) {
				t.Fatalf("labels = %v, want %v", labels, tc.wantLabels)
			}
			if known := s.Knows(tc.account); known == errors.Is(err, ErrNoMatch) {
				t.Fatalf("Knows(%q) = %v, but Authenticate says %v", tc.account, known, err)
			}
		})
	}
	t.Run("returned labels are a copy", func(t *testing.T) {
		l, _ := s.Authenticate(context.Background(), "alice", "alicepw")
		l.Labels["group"][0] = "root"
		again, _ := s.Authenticate(context.Background(), "alice", "alicepw")
		if again.Labels["group"][0] != "dev" {
			t.Fatal("caller modified the configured labels")
		}
	})
	t.Run("cancelled context is a backend failure", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := s.Authenticate(ctx, "alice", "alicepw"); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
	})
	for _, tc := range []struct {
		account string
		want    error
	}{{"alice", nil}, {"", nil}, {"mallory", ErrNoMatch}} {
		acct, err := s.Lookup(context.Background(), tc.account)
		if err != tc.want || (err == nil && (acct.Labels == nil || acct.Name != tc.account)) {
			t.Errorf("Lookup(%q) = %+v, %v; want err %v", tc.account, acct, err, tc.want)
		}
	}
	if !s.HasAnonymous() || s.MaxBcryptCost() != bcrypt.MinCost {
		t.Fatalf("HasAnonymous=%v MaxBcryptCost=%d", s.HasAnonymous(), s.MaxBcryptCost())
	}
}

func TestHtpasswd(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	carol := mustHash(t, "carolpw")
	// htpasswd -B writes $2y$; the library must accept that prefix.
	carolY := "$2y$" + strings.TrimPrefix(carol, "$2a$")
	good := write("good", "# team\n\ncarol:"+carolY+"\ndave:"+mustHash(t, "davepw")+"\n")

	h, err := NewHtpasswd(HtpasswdConfig{Path: good})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, account, password string
		wantErr                 error
	}{
		{"2y entry", "carol", "carolpw", nil},
		{"second entry", "dave", "davepw", nil},
		{"wrong password", "carol", "x", ErrWrongPassword},
		{"unknown", "erin", "x", ErrNoMatch},
		{"anonymous never matches", "", "", ErrNoMatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.Authenticate(context.Background(), tc.account, tc.password)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if known := h.Knows(tc.account); known == errors.Is(err, ErrNoMatch) {
				t.Fatalf("Knows(%q) = %v, but Authenticate says %v", tc.account, known, err)
			}
		})
	}

	for _, tc := range []struct {
		account string
		want    error
	}{{"carol", nil}, {"erin", ErrNoMatch}, {"", ErrNoMatch}} {
		if _, err := h.Lookup(context.Background(), tc.account); err != tc.want {
			t.Errorf("Lookup(%q) = %v, want %v", tc.account, err, tc.want)
		}
	}

	for _, tc := range []struct {
		name, content string
		want          []string // substrings of the error
	}{
		{"md5 entry names its line", "carol:" + carol + "\nbob:$apr1$xyz$abc\n", []string{":2:", `"bob"`, "bcrypt"}},
		{"sha entry", "bob:{SHA}abc=\n", []string{":1:", "bcrypt"}},
		{"no colon", "justaname\n", []string{":1:", "user:hash"}},
		{"duplicate user", "carol:" + carol + "\ncarol:" + carol + "\n", []string{":2:", "twice"}},
		{"every bad line reported", "a:x\nb:y\n", []string{":1:", ":2:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewHtpasswd(HtpasswdConfig{Path: write(strings.ReplaceAll(tc.name, " ", "_"), tc.content)})
			if err == nil {
				t.Fatal("no error")
			}
			var ce *cfgerr.Error
			if !errors.As(err, &ce) || ce.Path[0] != "path" {
				t.Fatalf("error not placed at path: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		if _, err := NewHtpasswd(HtpasswdConfig{Path: filepath.Join(dir, "absent")}); err == nil || !strings.Contains(err.Error(), "no such file") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("path required", func(t *testing.T) {
		if _, err := NewHtpasswd(HtpasswdConfig{}); err == nil {
			t.Fatal("no error")
		}
	})
}

func TestFakeHashNeverMatches(t *testing.T) {
	f, err := NewFakeHash(bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if cost, _ := bcrypt.Cost(f.hash); cost != bcrypt.MinCost {
		t.Fatalf("cost = %d", cost)
	}
	for _, pw := range []string{"", "password", strings.Repeat("a", 100)} {
		if bcrypt.CompareHashAndPassword(f.hash, []byte(pw)) == nil {
			t.Fatalf("fake hash matched %q", pw)
		}
	}
	// A cost of 0 (no bcrypt users) is clamped to the minimum.
	if f0, err := NewFakeHash(0); err != nil || f0 == nil {
		t.Fatal(err)
	}
}
