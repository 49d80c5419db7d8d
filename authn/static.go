package authn

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse/gatehouse/internal/cfgerr"
)

// User is one entry of the `users:` section.
type User struct {
	// Password is a bcrypt hash. Required for every account but the
	// anonymous one ("").
	Password *string `yaml:"password"`
	// Labels are handed to the ACL.
	Labels Labels `yaml:"labels"`
}

// StaticConfig is the `users:` section of auth_config.yml, docker_auth's
// static user map:
//
//	users:
//	  "admin":
//	    password: "$2y$05$…"          # bcrypt (gatehouse hash, htpasswd -nB)
//	  "alice":
//	    password: "$2y$10$…"
//	    labels: {group: [dev, ops]}
//	  "": {}                          # enables anonymous requests
type StaticConfig map[string]User

// Static authenticates the users listed in the configuration file.
type Static struct {
	users            map[string]staticUser
	minCost, maxCost int
}

type staticUser struct {
	hash   []byte // nil for the anonymous account
	labels Labels
}

var (
	_ Authenticator = (*Static)(nil)
	_ BcryptCoster  = (*Static)(nil)
	_ Knower        = (*Static)(nil)
)

// Validate checks every user entry; problems are placed at the account's
// key ("alice", "password").
func (c StaticConfig) Validate() error {
	_, err := c.build()
	return err
}

// NewStatic validates cfg and returns the authenticator.
func NewStatic(cfg StaticConfig) (*Static, error) {
	return cfg.build()
}

func (c StaticConfig) build() (*Static, error) {
	s := &Static{users: make(map[string]staticUser, len(c))}
	var errs []error
	accounts := make([]string, 0, len(c))
	for a := range c {
		accounts = append(accounts, a)
	}
	sort.Strings(accounts)
	for _, account := range accounts {
		u := c[account]
		su := staticUser{labels: u.Labels.Clone()}
		switch {
		case account == "" && u.Password != nil:
			errs = append(errs, cfgerr.At(errors.New("the anonymous account takes no password"), account, "password"))
		case account == "":
		case u.Password == nil || *u.Password == "":
			errs = append(errs, cfgerr.At(errors.New("password is required (a bcrypt hash)"), account, "password"))
		default:
			cost, err := checkBcrypt(*u.Password)
			if err != nil {
				errs = append(errs, cfgerr.At(err, account, "password"))
				continue
			}
			su.hash = []byte(*u.Password)
			s.maxCost = max(s.maxCost, cost)
			if s.minCost == 0 || cost < s.minCost {
				s.minCost = cost
			}
		}
		for k, vs := range u.Labels {
			if k == "" {
				errs = append(errs, cfgerr.At(errors.New("label key must not be empty"), account, "labels"))
			}
			for _, v := range vs {
				if v == "" {
					errs = append(errs, cfgerr.At(fmt.Errorf("label %q has an empty value", k), account, "labels", k))
				}
			}
		}
		s.users[account] = su
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// Name returns "static".
func (s *Static) Name() string { return "static" }

// MaxBcryptCost returns the highest bcrypt cost among the configured users.
func (s *Static) MaxBcryptCost() int { return s.maxCost }

// MinBcryptCost returns the lowest bcrypt cost among the configured users.
func (s *Static) MinBcryptCost() int { return s.minCost }

// HasAnonymous reports whether the anonymous account "" is configured.
func (s *Static) HasAnonymous() bool {
	_, ok := s.users[""]
	return ok
}

// Authenticate checks account and password. The anonymous account matches
// only an empty password: a client that sends credentials is never quietly
// downgraded to anonymous.
func (s *Static) Authenticate(ctx context.Context, account, password string) (Account, error) {
	u, ok := s.users[account]
	if !ok {
		return Account{}, ErrNoMatch
	}
	if u.hash == nil {
		// The anonymous account: only for requests without a password.
		if password == "" {
			return u.account(account), nil
		}
		return Account{}, ErrWrongPassword
	}
	if err := ctx.Err(); err != nil {
		return Account{}, fmt.Errorf("%w: static: %w", ErrUnavailable, err)
	}
	if bcrypt.CompareHashAndPassword(u.hash, []byte(password)) != nil {
		return Account{}, ErrWrongPassword
	}
	return u.account(account), nil
}

// account is what Authenticate and Lookup return for the user named name.
func (u *staticUser) account(name string) Account {
	return Account{Name: name, Labels: u.labels.Clone(), Credential: string(u.hash)}
}

// Knows reports whether account is configured ("" included).
func (s *Static) Knows(account string) bool {
	_, ok := s.users[account]
	return ok
}

// Lookup returns a configured account ("" included).
func (s *Static) Lookup(ctx context.Context, account string) (Account, error) {
	u, ok := s.users[account]
	if !ok {
		return Account{}, ErrNoMatch
	}
	return u.account(account), nil
}
