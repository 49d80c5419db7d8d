package config

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/authn"
)

func TestAccessTokensSection(t *testing.T) {
	testSections(t, []sectionCase{
		{"defaults", "access_tokens: {}\n", 0, "", ""},
		{"full", "access_tokens:\n  max_ttl: 90d\n  default_ttl: 720h\n  allow_no_expiry: false\n  max_ttl_by_label: {\"kind=ci\": 365d}\n  revoked: [abc]\n  any_username: true\n", 0, "", ""},
		{"seconds", "access_tokens: {max_ttl: 86400}\n", 0, "", ""},
		{"default longer than max", "access_tokens: {max_ttl: 7d, default_ttl: 30d}\n", 17, "access_tokens.default_ttl", "longer than max_ttl"},
		{"implicit default longer than max is clamped", "access_tokens: {max_ttl: 7d}\n", 0, "", ""},
		{"zero max", "access_tokens: {max_ttl: 0s}\n", 17, "access_tokens.max_ttl", "positive"},
		{"bad lifetime", "access_tokens: {max_ttl: forever}\n", 17, "access_tokens.max_ttl", "30d"},
		{"a label key without a value", "access_tokens: {max_ttl_by_label: {ci: 30d}}\n", 17, "access_tokens.max_ttl_by_label.ci", "KEY=VALUE"},
		{"an empty revoked id", "access_tokens: {revoked: [\"\"]}\n", 17, "access_tokens.revoked[0]", "token id"},
		{"a revoked id with a space", "access_tokens: {revoked: [\"a b\"]}\n", 17, "access_tokens.revoked[0]", "token id"},
		{"an unknown key", "access_tokens: {max_tll: 1d}\n", 17, "access_tokens.max_tll", ""},
		{"tokens only", "access_tokens: {tokens_only: {accounts: [alice], labels: [\"kind=person\"], authenticators: [ldap, static]}}\n", 0, "", ""},
		{"tokens only: a label without a value", "access_tokens: {tokens_only: {labels: [person]}}\n", 17, "access_tokens.tokens_only.labels[0]", "KEY=VALUE"},
		{"tokens only: an unknown authenticator", "access_tokens: {tokens_only: {authenticators: [ldap_auth]}}\n", 17, "access_tokens.tokens_only.authenticators[0]", "one of static"},
		{"tokens only: anonymous", "access_tokens: {tokens_only: {accounts: [\"\"]}}\n", 17, "access_tokens.tokens_only.accounts[0]", "empty account"},
		{"tokens only: an unknown key", "access_tokens: {tokens_only: {users: [alice]}}\n", 17, "access_tokens.tokens_only.users", ""},
	}, nil)
}

func TestAccessTokensPolicy(t *testing.T) {
	dir := t.TempDir()
	rf := filepath.Join(dir, "revoked")
	if err := os.WriteFile(rf, []byte("# revoked\nid2  # ci-web, leaked\n\n  id3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, perr := parse(t, base+"access_tokens:\n  max_ttl: 30d\n  max_ttl_by_label: {\"kind=ci\": 365d, \"kind=bot\": 60d}\n  revoked: [id1]\n  revoked_file: "+rf+"\n")
	if perr != nil {
		t.Fatal(perr)
	}
	a := c.AccessTokens
	day := 24 * time.Hour
	if got := a.MaxFor(nil); got != 30*day {
		t.Errorf("MaxFor(no labels) = %v", got)
	}
	if got := a.MaxFor(authn.Labels{"kind": {"bot", "ci"}}); got != 365*day {
		t.Errorf("MaxFor(ci, bot) = %v, want the largest", got)
	}
	if got := a.Default(); got != 30*day {
		t.Errorf("Default = %v", got)
	}
	ids, err := a.RevokedIDs()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for id := range ids {
		got = append(got, id)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"id1", "id2", "id3"}) {
		t.Errorf("revoked = %v", got)
	}
	if !slices.Contains(c.Files(), rf) {
		t.Errorf("Files() = %v lacks the revoked file, so editing it would not reload", c.Files())
	}
}

func TestTokensOnlyRefuses(t *testing.T) {
	o := &TokensOnly{Accounts: []string{"alice"}, Labels: []string{"kind=person"}, Authenticators: []string{"ldap"}}
	tests := []struct {
		name, account, backend string
		labels                 authn.Labels
		want                   bool
	}{
		{"named account", "alice", "static", nil, true},
		{"label", "bob", "static", authn.Labels{"kind": {"bot", "person"}}, true},
		{"label key with another value", "bob", "static", authn.Labels{"kind": {"ci"}}, false},
		{"authenticator", "dave", "ldap", nil, true},
		{"none", "bob", "htpasswd", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := o.Refuses(tc.account, tc.backend, tc.labels); got != tc.want {
				t.Errorf("Refuses = %v, want %v", got, tc.want)
			}
		})
	}
	if (*TokensOnly)(nil).Refuses("alice", "static", nil) {
		t.Error("no tokens_only section refuses")
	}
}
