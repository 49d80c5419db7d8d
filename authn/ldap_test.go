package authn

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/gatehouse/gatehouse/internal/ldaptest"
)

// testLDAPConfig is the configuration most tests use: a service account,
// memberOf as the label "groups" (CN, lower case) and the posixGroups found
// by memberUid as the label "posix".
func testLDAPConfig(srv *ldaptest.Server) LDAPConfig {
	return LDAPConfig{
		Addr:             srv.Addr,
		BindDN:           ldaptest.ServiceDN,
		BindPasswordFile: srv.BindPasswordFile,
		Base:             ldaptest.People,
		Filter:           "(&(objectClass=inetOrgPerson)(|(uid=${account})(cn=${account})))",
		Labels:           map[string]LDAPLabel{"groups": {Attribute: "memberOf", ParseCN: true, LowerCase: true}},
		GroupSearch: &LDAPGroupSearch{
			Base:      ldaptest.Groups,
			Filter:    "(&(objectClass=posixGroup)(memberUid=${account}))",
			Attribute: "cn",
			Label:     "posix",
		},
		ConnectTimeout: 2 * time.Second,
		RequestTimeout: 2 * time.Second,
	}
}

func newTestLDAP(t testing.TB, cfg LDAPConfig) *LDAP {
	t.Helper()
	a, err := NewLDAP(cfg)
	if err != nil {
		t.Fatalf("NewLDAP: %v", err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// outcome names an authenticator result for comparisons.
func outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrNoMatch):
		return "no match"
	case errors.Is(err, ErrWrongPassword):
		return "wrong password"
	case errors.Is(err, ErrUnavailable):
		return "unavailable"
	}
	return "other: " + err.Error()
}

// authCase is one Authenticate call and its expected outcome and labels.
type authCase struct {
	name, account, password string
	want                    string
	labels                  Labels
}

func runAuthCases(t *testing.T, a *LDAP, cases []authCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			acct, err := a.Authenticate(testCtx(t), c.account, c.password)
			if got := outcome(err); got != c.want {
				t.Fatalf("Authenticate(%q) = %s (%v), want %s", c.account, got, err, c.want)
			}
			if !reflect.DeepEqual(acct.Labels, c.labels) {
				t.Errorf("labels = %v, want %v", acct.Labels, c.labels)
			}
			if err == nil && acct.Name != c.account {
				t.Errorf("account name = %q, want %q (the directory's spelling)", acct.Name, c.account)
			}
		})
	}
}

func TestLDAPAuthenticate(t *testing.T) {
	srv := ldaptest.Start(t)
	a := newTestLDAP(t, testLDAPConfig(srv))
	runAuthCases(t, a, []authCase{
		{"groupOfNames and posixGroup member", "alice", ldaptest.Alice.Password, "ok",
			Labels{"groups": {"pushers"}, "posix": {"developers"}}},
		{"posixGroup member only", "bob", ldaptest.Bob.Password, "ok", Labels{"posix": {"developers"}}},
		{"parse_cn and lower_case", "carol", ldaptest.Carol.Password, "ok", Labels{"groups": {"admins"}}},
		{"uid that needs DN escaping", ldaptest.Doe.UID, ldaptest.Doe.Password, "ok", nil},
		{"wrong password", "alice", "not-" + ldaptest.Alice.Password, "wrong password", nil},
		{"another user's password", "alice", ldaptest.Bob.Password, "wrong password", nil},
		{"unknown user", "mallory", ldaptest.Alice.Password, "no match", nil},
		{"empty password", "alice", "", "no match", nil},
		{"empty account", "", ldaptest.Alice.Password, "no match", nil},
		{"filter finds two entries", "twin", ldaptest.Twin1.Password, "wrong password", nil},
	})
}

func TestLDAPLookup(t *testing.T) {
	srv := ldaptest.Start(t)
	a := newTestLDAP(t, testLDAPConfig(srv))
	for _, c := range []struct {
		name, account string
		want          string
		labels        Labels
	}{
		{"existing account, same labels as Authenticate", "alice", "ok", Labels{"groups": {"pushers"}, "posix": {"developers"}}},
		{"unknown account", "mallory", "no match", nil},
		{"empty account", "", "no match", nil},
		{"ambiguous account", "twin", "no match", nil},
		{"wildcard", "*", "no match", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			acct, err := a.Lookup(testCtx(t), c.account)
			labels := acct.Labels
			if got := outcome(err); got != c.want {
				t.Fatalf("Lookup(%q) = %s (%v), want %s", c.account, got, err, c.want)
			}
			if !reflect.DeepEqual(labels, c.labels) {
				t.Errorf("labels = %v, want %v", labels, c.labels)
			}
		})
	}
}

// TestLDAPInjection tries accounts that would match other entries if they
// reached the filter or the bind DN unescaped. None may authenticate, and
// none may look like a backend failure (which user input must not cause).
func TestLDAPInjection(t *testing.T) {
	srv := ldaptest.Start(t)
	search := testLDAPConfig(srv)
	search.Filter = "(&(objectClass=inetOrgPerson)(uid=${account}))"
	initial := testLDAPConfig(srv)
	initial.BindDN, initial.BindPasswordFile = "uid=${account},"+ldaptest.People, ""
	initial.InitialBindAsUser = true
	initial.Filter = search.Filter
	accounts := []string{
		"*",
		"alice)(uid=*",
		"ali*",
		"*)(uid=*))(|(uid=*",
		"alice)(|(objectClass=*",
		`x\00`,
		"x\x00",
		"alice\x00",
		`\2a`,
		"alice\xff",
		"uid=alice," + ldaptest.People,
		"alice," + ldaptest.People,
		"alice+uid=bob",
		"#alice",
		" alice\\",
	}
	for _, mode := range []struct {
		name string
		cfg  LDAPConfig
	}{{"search then bind", search}, {"initial bind as user", initial}} {
		a := newTestLDAP(t, mode.cfg)
		t.Run(mode.name, func(t *testing.T) {
			for _, account := range accounts {
				for _, pw := range []string{ldaptest.Alice.Password, "*"} {
					labels, err := a.Authenticate(testCtx(t), account, pw)
					if got := outcome(err); got != "no match" && got != "wrong password" {
						t.Errorf("Authenticate(%q, %q) = %s (%v) labels %v, want no match or wrong password", account, pw, got, err, labels)
					}
				}
				if labels, err := a.Lookup(testCtx(t), account); !errors.Is(err, ErrNoMatch) {
					t.Errorf("Lookup(%q) = %s (%v) labels %v, want no match", account, outcome(err), err, labels)
				}
			}
		})
	}
}

func TestLDAPInitialBindAsUser(t *testing.T) {
	srv := ldaptest.Start(t)
	cfg := testLDAPConfig(srv)
	cfg.BindDN, cfg.BindPasswordFile = "uid=${account},"+ldaptest.People, ""
	cfg.InitialBindAsUser = true
	cfg.Filter = "(uid=${account})"
	a := newTestLDAP(t, cfg)
	runAuthCases(t, a, []authCase{
		{"login", "alice", ldaptest.Alice.Password, "ok", Labels{"groups": {"pushers"}, "posix": {"developers"}}},
		{"uid with a comma, DN escaped", ldaptest.Doe.UID, ldaptest.Doe.Password, "ok", nil},
		// The directory cannot tell an unknown DN from a wrong password.
		{"wrong password", "alice", "nope", "no match", nil},
		{"unknown user", "mallory", "nope", "no match", nil},
		{"empty password", "alice", "", "no match", nil},
	})
	t.Run("lookup searches anonymously", func(t *testing.T) {
		acct, err := a.Lookup(testCtx(t), "alice")
		if err != nil || !reflect.DeepEqual(acct.Labels, Labels{"groups": {"pushers"}, "posix": {"developers"}}) {
			t.Fatalf("Lookup(alice) = %+v, %v", acct, err)
		}
	})
	t.Run("pooled connections are anonymous again", func(t *testing.T) {
		requireIdleBoundAs(t, a, "")
	})
}

// requireIdleBoundAs checks, with the WhoAmI extended operation, that every
// idle pooled connection is bound as want ("" is anonymous).
func requireIdleBoundAs(t *testing.T, a *LDAP, want string) {
	t.Helper()
	a.pool.mu.Lock()
	idle := append([]*ldapConn(nil), a.pool.idle...)
	a.pool.mu.Unlock()
	if len(idle) == 0 {
		t.Fatal("no idle connection in the pool")
	}
	for i, c := range idle {
		res, err := c.l.WhoAmI(nil)
		if err != nil {
			t.Fatalf("idle connection %d: WhoAmI: %v", i, err)
		}
		got := strings.TrimPrefix(res.AuthzID, "dn:")
		if !strings.EqualFold(got, want) {
			t.Errorf("idle connection %d is bound as %q, want %q", i, got, want)
		}
	}
}

// TestLDAPPoolNeverLeavesUserBound runs good and bad logins concurrently,
// then checks that every pooled connection is bound as the service account,
// that connections were reused, and that the pool size was respected.
func TestLDAPPoolNeverLeavesUserBound(t *testing.T) {
	srv := ldaptest.Start(t)
	cfg := testLDAPConfig(srv)
	cfg.PoolSize = 3
	a := newTestLDAP(t, cfg)
	var dials sync.Map
	a.pool.onDial = func(c *ldapConn) { dials.Store(c, true) }
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 32 {
		wg.Go(func() {
			u, pw, want := ldaptest.Alice, ldaptest.Alice.Password, ""
			switch i % 3 {
			case 1:
				u, pw, want = ldaptest.Bob, "wrong", "wrong password"
			case 2:
				u, pw = ldaptest.Bob, ldaptest.Bob.Password
			}
			_, err := a.Authenticate(context.Background(), u.UID, pw)
			if got := outcome(err); (want == "" && got != "ok") || (want != "" && got != want) {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent authentication: %s (%v)", outcome(err), err)
	}
	n := 0
	dials.Range(func(any, any) bool { n++; return true })
	if n == 0 || n > cfg.PoolSize {
		t.Errorf("%d connections dialled for 32 logins with pool_size %d", n, cfg.PoolSize)
	}
	requireIdleBoundAs(t, a, ldaptest.ServiceDN)

	// The check would see a connection left bound as a user.
	l, err := ldap.DialURL("ldap://" + srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Bind(ldaptest.Alice.DN(), ldaptest.Alice.Password); err != nil {
		t.Fatal(err)
	}
	if res, err := l.WhoAmI(nil); err != nil || !strings.EqualFold(res.AuthzID, "dn:"+ldaptest.Alice.DN()) {
		t.Fatalf("WhoAmI after alice's bind = %+v, %v", res, err)
	}
}

// TestLDAPAccountSpelling: the account handed on is the directory's own
// spelling, whatever case or filter attribute the login used, so an ACL
// rule or a failure budget for "bob" also holds for "BOB"; with
// account_spelling: exact other spellings are refused.
func TestLDAPAccountSpelling(t *testing.T) {
	srv := ldaptest.Start(t)
	directory := newTestLDAP(t, testLDAPConfig(srv))
	exactCfg := testLDAPConfig(srv)
	exactCfg.AccountSpelling = LDAPSpellingExact
	exact := newTestLDAP(t, exactCfg)
	for _, c := range []struct {
		name, typed string
		directory   string // the account name returned, or the outcome
		exact       string
	}{
		{"as in the directory", "bob", "bob", "bob"},
		{"upper case", "BOB", "bob", "wrong password"},
		{"mixed case", "Bob", "bob", "wrong password"},
		{"unknown", "bobby", "no match", "no match"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, m := range []struct {
				a    *LDAP
				want string
			}{{directory, c.directory}, {exact, c.exact}} {
				acct, err := m.a.Authenticate(testCtx(t), c.typed, ldaptest.Bob.Password)
				got := acct.Name
				if err != nil {
					got = outcome(err)
				}
				if got != m.want {
					t.Errorf("account_spelling %q: Authenticate(%q) = %q (%v), want %q", m.a.cfg.AccountSpelling, c.typed, got, err, m.want)
				}
				if err == nil && !reflect.DeepEqual(acct.Labels, Labels{"posix": {"developers"}}) {
					t.Errorf("labels %v: the group search must use the directory's name", acct.Labels)
				}
			}
		})
	}
	t.Run("lookup returns the directory's spelling", func(t *testing.T) {
		if acct, err := directory.Lookup(testCtx(t), "BOB"); err != nil || acct.Name != "bob" {
			t.Fatalf("Lookup(BOB) = %+v, %v", acct, err)
		}
	})
}

// TestLDAPCredentialAttribute: with credential_attribute the account's
// credential follows the attribute, so a password change (which changes
// entryCSN) revokes refresh tokens; without it the credential is empty.
func TestLDAPCredentialAttribute(t *testing.T) {
	srv := ldaptest.Start(t)
	cfg := testLDAPConfig(srv)
	cfg.CredentialAttribute = "entryCSN"
	a := newTestLDAP(t, cfg)
	before, err := a.Authenticate(testCtx(t), "bob", ldaptest.Bob.Password)
	if err != nil || before.Credential == "" {
		t.Fatalf("Authenticate(bob) = %+v, %v; want a credential", before, err)
	}
	if looked, err := a.Lookup(testCtx(t), "bob"); err != nil || looked.Credential != before.Credential {
		t.Fatalf("Lookup(bob) credential %q, Authenticate's %q (%v)", looked.Credential, before.Credential, err)
	}
	srv.SetPassword(ldaptest.Bob, "bob-new-pw")
	after, err := a.Lookup(testCtx(t), "bob")
	if err != nil || after.Credential == before.Credential {
		t.Fatalf("after the password change Lookup(bob) = %+v, %v; want another credential than %q", after, err, before.Credential)
	}
	if acct, err := newTestLDAP(t, testLDAPConfig(srv)).Lookup(testCtx(t), "bob"); err != nil || acct.Credential != "" {
		t.Fatalf("without credential_attribute Lookup(bob) = %+v, %v; want no credential", acct, err)
	}
}
