package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/authn"
	"github.com/gatehouse/gatehouse/token"
)

// MintRequest is what gatehouse token create asks for.
type MintRequest struct {
	Owner  string
	Name   string
	Scopes []string
	// TTL is the lifetime; 0 means access_tokens.default_ttl.
	TTL time.Duration
	// NoExpiry asks for a token without expiry (allow_no_expiry only).
	NoExpiry bool
}

// MintAccessToken signs an access token for r.Owner within the
// configuration's policy: the owner must be known to an authenticator that
// can look it up (the first, in chain order, that knows it), the lifetime
// at most the owner's max_ttl (by label), no expiry only with
// allow_no_expiry. It returns the token, to be shown once, and its claims.
func (s *Server) MintAccessToken(ctx context.Context, r MintRequest) (string, *token.AccessTokenClaims, error) {
	st := s.state.Load()
	if st == nil || st.tokens == nil {
		return "", nil, errors.New("auth: access tokens are off: add an access_tokens section to the configuration")
	}
	acct, backend, err := st.findOwner(ctx, r.Owner)
	if err != nil {
		return "", nil, err
	}
	return st.mint(acct, backend, r, s.now())
}

// mint signs an access token for acct, known to the authenticator backend,
// within the lifetime policy: at most the owner's max_ttl (by label), no
// expiry only with allow_no_expiry. Its errors are the requester's to fix.
func (st *state) mint(acct authn.Account, backend string, r MintRequest, now time.Time) (string, *token.AccessTokenClaims, error) {
	pol := st.tokens.cfg
	var exp time.Time
	switch {
	case r.NoExpiry && !pol.AllowNoExpiry:
		return "", nil, errors.New("auth: tokens without expiry are not allowed (access_tokens.allow_no_expiry)")
	case r.NoExpiry:
	default:
		ttl := r.TTL
		if ttl == 0 {
			ttl = pol.Default()
		}
		if max := pol.MaxFor(acct.Labels); ttl > max {
			return "", nil, fmt.Errorf("auth: a lifetime of %v is longer than the %v allowed to %s (access_tokens.max_ttl, max_ttl_by_label)", ttl, max, acct.Name)
		}
		exp = now.Add(ttl)
	}
	return st.signer.AccessTokens().Mint(token.AccessTokenClaims{Name: r.Name, Owner: acct.Name,
		Authenticator: backend, Scopes: r.Scopes, ExpiresAt: exp})
}

// findOwner looks account up in the authenticators in chain order.
func (st *state) findOwner(ctx context.Context, account string) (authn.Account, string, error) {
	for _, b := range st.backends {
		acct, err := b.Lookup(ctx, account)
		switch {
		case err == nil:
			return acct, b.Name(), nil
		case !errors.Is(err, authn.ErrNoMatch):
			return authn.Account{}, "", fmt.Errorf("auth: looking %q up in %s: %w", account, b.Name(), err)
		}
	}
	return authn.Account{}, "", fmt.Errorf("auth: no authenticator that can look accounts up knows %q (ext_auth accounts cannot own tokens)", account)
}

// TokenReport is what gatehouse token inspect prints: what a token says
// (never its signature) and whether, and what, it grants now.
type TokenReport struct {
	Claims *token.AccessTokenClaims
	// Problem is why the token would be refused now; "" when it is
	// accepted.
	Problem string
	// Decisions are, for each scope pattern taken as a requested scope,
	// what the token would be granted now for the owner.
	Decisions []Decision
}

// InspectAccessToken verifies raw as the token endpoint would (signature,
// expiry, revocation, owner, lifetime policy) and decides each of its scope
// patterns, taken as a scope, for the owner, narrowed by the token.
func (s *Server) InspectAccessToken(ctx context.Context, raw, service string) (*TokenReport, error) {
	st := s.state.Load()
	if st == nil || st.tokens == nil {
		return nil, errors.New("auth: access tokens are off: add an access_tokens section to the configuration")
	}
	claims, err := st.tokens.verify.Verify(raw)
	if err != nil {
		return nil, err
	}
	rep := &TokenReport{Claims: claims}
	id, e := st.tokenOwner(ctx, claims, msgBadAccessToken)
	if e != nil {
		rep.Problem = e.Err.Error()
		return rep, nil
	}
	var scopes []Scope
	for _, p := range claims.Scopes {
		if strings.HasSuffix(p, ":*") {
			p = p[:len(p)-1] + allActions
		}
		sc, err := ParseScopes([]string{p})
		if err != nil || len(sc) != 1 {
			continue
		}
		scopes = append(scopes, sc[0])
	}
	req := &Request{Service: service, Scopes: scopes}
	access, decisions, complete, _ := st.decide(req, &id)
	g := &grant{req: req, id: id, access: access, decisions: decisions, complete: complete}
	narrowByToken(g)
	rep.Decisions = g.decisions
	return rep, nil
}

// allActions stands for "*" in a pattern's actions when it is decided as a
// scope: the registry actions a token might be asked for.
const allActions = "pull,push,delete,*"
