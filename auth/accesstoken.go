package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/token"
)

// Access tokens (docs/access-tokens.md) are a credential kind of their own:
// state.identify sends a password that is a JWT issued by this Gatehouse
// here, before any password check. What a token grants is the intersection
// of its scope patterns with the owner's ACL decision (narrowByToken, after
// authorize).

// GrantAccessToken names, in metrics and the audit log, a login whose
// password was an access token.
const GrantAccessToken = "access_token"

// msgBadAccessToken is the message of every refused access token; the
// audit line says why.
const msgBadAccessToken = "invalid, expired or revoked access token"

// accessCredentialPrefix marks the credential of an access-token login: a
// refresh token issued to it is bound to the token's id, not to the
// owner's password, which the machine never held.
const accessCredentialPrefix = "gh-access:"

// accessTokens is a configuration's access-token policy: the verifier, the
// access_tokens section and the revoked ids read when the state was built
// (a reload, the revoked file's included, builds them again).
type accessTokens struct {
	verify  *token.AccessTokens
	cfg     *config.AccessTokens
	revoked map[string]struct{}
	seen    verifiedTokens
	now     func() time.Time
}

// newAccessTokens returns nil when the section is absent.
func newAccessTokens(cfg *config.Config, signer *token.Signer, now func() time.Time) (*accessTokens, error) {
	if cfg.AccessTokens == nil || signer == nil {
		return nil, nil
	}
	revoked, err := cfg.AccessTokens.RevokedIDs()
	if err != nil {
		return nil, err
	}
	return &accessTokens{verify: signer.AccessTokens(), cfg: cfg.AccessTokens, revoked: revoked, now: now}, nil
}

// isGatehouseToken reports whether password is a JWT this Gatehouse
// issued (of any kind: access, refresh or registry token), without
// verifying it: such a password goes to identifyAccessToken, which refuses
// every kind but a valid access token with the precise reason, and is
// never compared with a stored password.
func (st *state) isGatehouseToken(req *Request) bool {
	if st.tokens == nil || !req.HasCredentials || req.Grant != GrantPassword {
		return false
	}
	if strings.Count(req.Password, ".") != 2 {
		return false // not a JWT: a password
	}
	if c, _ := st.tokens.seen.get(req.Password); c != nil {
		return true // verified before
	}
	_, iss, ok := token.PeekJWT(req.Password)
	return ok && iss == st.signer.Issuer()
}

// identifyAccessToken verifies the access token in req.Password, checks it
// against the revocation list, the user name and the lifetime policy, and
// looks its owner up again in the owner's authenticator.
func (st *state) identifyAccessToken(ctx context.Context, req *Request) (identity, *Error) {
	req.credKind = GrantAccessToken
	claims, err := st.tokens.verifyCached(req.Password, st.tokens.now())
	if err != nil {
		return identity{}, st.chain.unauthorized(msgBadAccessToken, err)
	}
	req.tokenName, req.tokenID = claims.Name, claims.ID
	if !st.tokens.cfg.AnyUsername && req.Account != claims.Owner {
		return identity{}, st.chain.unauthorized(msgBadAccessToken,
			fmt.Errorf("access token: user name %q is not the token's owner %q (log in with -u %s)", req.Account, claims.Owner, claims.Owner))
	}
	req.Account = claims.Owner
	id, e := st.tokenOwner(ctx, claims, msgBadAccessToken)
	if e == nil && st.grants != nil {
		// The grant cache may answer the same request again until the
		// token expires, within cache.ttl: a reload (a revocation, an
		// owner removed from a file) starts a new cache; an owner removed
		// from a directory is noticed within cache.ttl, as for a password
		// login answered by the credential cache.
		id.until = claims.ExpiresAt
		if id.until.IsZero() {
			id.until = st.grants.now().Add(st.grants.ttl)
		}
	}
	return id, e
}

// tokenOwner checks an access token's claims (from the token, or carried
// by a refresh token issued to its login) against the revocation list and
// looks the owner up; the identity carries the claims, whose scopes then
// narrow the grant.
func (st *state) tokenOwner(ctx context.Context, claims *token.AccessTokenClaims, message string) (identity, *Error) {
	if _, ok := st.tokens.revoked[claims.ID]; ok {
		return identity{}, st.chain.unauthorized(message, fmt.Errorf("access token %s (%s) is revoked", claims.ID, claims.Name))
	}
	id, e := st.chain.lookupAs(ctx, claims.Authenticator, claims.Owner, message, "access token")
	if e != nil {
		return identity{}, e
	}
	if err := st.tokens.lifetimeAllowed(claims, &id); err != nil {
		return identity{}, st.chain.unauthorized(message, err)
	}
	id.from = claims
	id.Credential = accessCredentialPrefix + claims.ID
	return id, nil
}

// passwordRefused refuses a tokens-only account's login (access_tokens.
// tokens_only) made with its password or with a refresh token of a
// password login, telling the user to use an access token. Access-token
// logins, anonymous requests and the minting endpoint (where the password
// is how a token is obtained) pass.
func (st *state) passwordRefused(req *Request, id *identity) *Error {
	if st.tokens == nil || id.from != nil || req.mint || id.Account == "" ||
		!st.tokens.cfg.TokensOnly.Refuses(id.Account, id.Backend, id.Labels) {
		return nil
	}
	return &Error{
		Status:    http.StatusUnauthorized,
		Code:      CodeUnauthorized,
		Message:   fmt.Sprintf("password login is disabled for %s: log in with an access token as the password (create one with POST %s/access_tokens or ask an operator)", id.Account, st.prefix),
		Challenge: st.chain.challenge,
		Err:       fmt.Errorf("access_tokens.tokens_only: %s (%s) logged in with its password, not an access token", id.Account, id.Backend),
	}
}

// lifetimeAllowed holds the policy at use: a token without expiry only
// with allow_no_expiry, and none longer than its owner's maximum now.
func (a *accessTokens) lifetimeAllowed(c *token.AccessTokenClaims, id *identity) error {
	if c.ExpiresAt.IsZero() {
		if !a.cfg.AllowNoExpiry {
			return fmt.Errorf("access token %s (%s) has no expiry and access_tokens.allow_no_expiry is false", c.ID, c.Name)
		}
		return nil
	}
	if max := a.cfg.MaxFor(id.Labels); c.Lifetime() > max {
		return fmt.Errorf("access token %s (%s) lives %v, longer than the %v its owner may have now", c.ID, c.Name, c.Lifetime(), max)
	}
	return nil
}

// identifyRefreshFromToken finishes a refresh token issued to an
// access-token login: the access token's revocation, owner and policy are
// checked again, and its scopes narrow what the refresh grants.
func (st *state) identifyRefreshFromToken(ctx context.Context, from *token.AccessTokenClaims) (identity, *Error) {
	if st.tokens == nil {
		return identity{}, st.chain.unauthorized(msgBadRefresh, errors.New("refresh token issued to an access token, but access_tokens is off"))
	}
	return st.tokenOwner(ctx, from, msgBadRefresh)
}

// narrowByToken keeps, of what the ACL granted g, only what the access
// token's scope patterns allow; complete is recomputed. A grant not made
// to an access token is unchanged.
func narrowByToken(g *grant) {
	from := g.id.from
	if from == nil {
		return
	}
	g.complete = true
	for i := range g.access {
		a := &g.access[i]
		allowed := token.AllowedActions(from.Scopes, a.Type, a.Name, a.Actions)
		if allowed == nil {
			allowed = []string{}
		}
		if len(allowed) != len(a.Actions) {
			a.Actions = allowed
			d := &g.decisions[i]
			d.Granted = strings.Join(allowed, ",")
			d.Comment = strings.TrimSpace(d.Comment + " (narrowed by access token scopes)")
		}
		g.complete = g.complete && len(a.Actions) == len(g.req.Scopes[i].Actions)
	}
}
