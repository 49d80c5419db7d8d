// Package authn holds Gatehouse's authenticators: the backends that check an
// account and password and say which labels the account carries.
//
// Every backend implements Authenticator and reports its outcome with the
// sentinel errors below, checked with errors.Is:
//
//   - nil: the password is right; the labels feed the ACL.
//   - ErrNoMatch: the backend does not know the account; the next
//     authenticator in the chain is asked (docker_auth's semantics).
//   - ErrWrongPassword: the backend knows the account and the password is
//     wrong; the chain stops and the client gets 401.
//   - ErrUnavailable (wrapped with the reason): the backend could not answer;
//     the client gets 503, never 401.
//
// Backends own a typed Config whose doc comment shows its YAML, and a
// constructor that validates it; nothing registers itself in init.
package authn

import (
	"context"
	"errors"
	"maps"
	"slices"
	"time"
)

// Sentinel outcomes of Authenticate.
var (
	// ErrNoMatch means the backend does not know the account.
	ErrNoMatch = errors.New("authn: no such account")
	// ErrWrongPassword means the account exists and the password is wrong.
	ErrWrongPassword = errors.New("authn: wrong password")
	// ErrUnavailable means the backend failed to answer; it is wrapped
	// together with the precise reason, which is logged and never sent to
	// the client.
	ErrUnavailable = errors.New("authn: backend unavailable")
)

// Labels are an account's attributes as the ACL sees them: key → values.
type Labels map[string][]string

// Clone returns a deep copy of l (nil stays nil).
func (l Labels) Clone() Labels {
	if l == nil {
		return nil
	}
	out := make(Labels, len(l))
	for k, v := range l {
		out[k] = slices.Clone(v)
	}
	return out
}

// Keys returns the label keys in sorted order.
func (l Labels) Keys() []string {
	return slices.Sorted(maps.Keys(l))
}

// Account is what a backend says about an account it accepted or found.
type Account struct {
	// Name is the account as the backend spells it, which the ACL, the
	// throttle, the audit log and the tokens use. Backends that match names
	// exactly (static, htpasswd, MongoDB) return the name they were asked
	// for; LDAP returns the directory's own value of the account attribute,
	// so "BOB" and "bob" are one account there.
	Name string
	// Labels are the account's attributes for the ACL; nil for none.
	Labels Labels
	// Credential identifies the stored credential: it changes when the
	// password does (static, htpasswd and MongoDB return the stored hash;
	// LDAP the value of its credential_attribute). Refresh tokens carry a
	// keyed fingerprint of it, so a password change revokes them. "" when
	// the backend has nothing to offer.
	Credential string
	// NoRefresh is set by backends that cannot look an account up again
	// without its password (ext_auth): no refresh token is issued for it,
	// so a client keeps its password and every login is checked again.
	NoRefresh bool
	// Expires is when the credential itself stops being valid (a workload
	// identity token's exp); the credential cache forgets the success
	// then, whatever its ttl. Zero for a credential that does not expire.
	Expires time.Time
}

// Authenticator checks credentials against one backend.
type Authenticator interface {
	// Name identifies the backend in logs and metrics, e.g. "static".
	Name() string
	// Authenticate checks password for account. It honours ctx's deadline.
	// See the package documentation for the meaning of the errors.
	Authenticate(ctx context.Context, account, password string) (Account, error)
	// Lookup reports whether account still exists, without a password, and
	// returns what Authenticate would. Refresh tokens use it on every use,
	// so a removed account or a changed password stops them at once. It
	// returns ErrNoMatch for an unknown account and ErrUnavailable
	// (wrapped) when the backend fails.
	Lookup(ctx context.Context, account string) (Account, error)
}

// Checker is implemented by backends that depend on a server (a
// directory, a database): Check answers whether it responds within ctx's
// deadline. /readyz calls it.
type Checker interface {
	Check(ctx context.Context) error
}

// Knower is implemented by backends that hold their accounts in memory
// (static users, htpasswd files): Knows tells, at the cost of a map
// lookup, whether Authenticate could answer anything but ErrNoMatch for
// account. The chain passes over a backend that does not know the account
// without a cache lookup or a password-check slot, as its Authenticate
// would have returned ErrNoMatch at once.
type Knower interface {
	Knows(account string) bool
}

// BcryptCoster is implemented by backends that compare bcrypt hashes. The
// chain uses the highest cost to size the fake comparison it runs for
// unknown accounts, so they cost as much as a wrong password, and pads
// every password check to the time of one comparison at that cost, so
// accounts whose hashes are cheaper do not answer faster.
type BcryptCoster interface {
	// MaxBcryptCost is the highest cost of the hashes the backend holds
	// (or expects, when it cannot know them in advance).
	MaxBcryptCost() int
	// MinBcryptCost is the lowest; it differs from the highest when the
	// costs are mixed, which `gatehouse validate` warns about.
	MinBcryptCost() int
}
