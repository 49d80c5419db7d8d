package auth

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/gatehouse/gatehouse/authn"
	"github.com/gatehouse/gatehouse/token"
)

// msgBadSignIn is the 401 message for a sign-in credential that does not
// verify or whose account the provider no longer vouches for.
const msgBadSignIn = "invalid or expired sign-in credential: sign in again"

// isSignIn reports whether the password is shaped like a sign-in
// credential (its header type, unverified); such a password goes to
// identifySignIn and is never compared with a stored password.
func (st *state) isSignIn(req *Request) bool {
	if st.signIns() == nil || !req.HasCredentials || req.Grant != GrantPassword {
		return false
	}
	typ, _, ok := token.PeekJWT(req.Password)
	return ok && typ == token.SignInType
}

// identifySignIn verifies a sign-in credential, checks the user name and
// revalidates the account with the provider when revalidate_after has
// passed since it was last vouched for; the identity's labels are those
// the provider gave at the last revalidation.
func (st *state) identifySignIn(ctx context.Context, req *Request) (identity, *Error) {
	c, err := st.signIns().Verify(req.Password)
	if err != nil {
		return identity{}, st.chain.unauthorized(msgBadSignIn, err)
	}
	if req.Account != c.Account {
		return identity{}, st.chain.unauthorized(msgBadSignIn,
			fmt.Errorf("oidc_auth: user name %q is not the credential's account %q (log in with -u %s)", req.Account, c.Account, c.Account))
	}
	var labels map[string][]string
	switch {
	case c.Provider == githubBackend && st.github != nil:
		labels, err = st.github.revalidate(ctx, c, st.signInShare())
	case c.Provider == googleBackend && st.google != nil:
		labels, err = st.google.revalidate(ctx, c, st.signInShare())
	case c.Provider == gitlabBackend && st.gitlab != nil:
		labels, err = st.gitlab.revalidate(ctx, c, st.signInShare())
	case c.Provider == signInBackend && st.signin != nil:
		labels, err = st.signin.revalidate(ctx, c, st.signInShare())
	default:
		err = fmt.Errorf("signin: credential from %s, which is not configured", c.Provider)
	}
	if err != nil {
		if errors.Is(err, errProviderDown) {
			return identity{}, unavailable(err)
		}
		return identity{}, st.chain.unauthorized(msgBadSignIn, err)
	}
	// The labels are the provider's at the last revalidation (at the
	// sign-in until the first), not the credential's: a team or group the
	// person left is gone within revalidate_after.
	return identity{Account: c.Account, Labels: authn.Labels(labels), Backend: c.Provider,
		Credential: "signin:" + c.ID, noRefresh: true}, nil
}

// signIns returns the sign-in credentials of whichever browser flow is
// configured (they share the signer's keys), or nil.
func (st *state) signIns() *token.SignIns {
	switch {
	case st.signin != nil:
		return st.signin.creds
	case st.github != nil:
		return st.github.creds
	case st.gitlab != nil:
		return st.gitlab.creds
	case st.google != nil:
		return st.google.creds
	}
	return nil
}

// errProviderDown marks a revalidation that got no answer.
var errProviderDown = errors.New("oidc_auth: provider unreachable")

// revalidate asks the provider, with a refresh-token grant, whether the
// person still signs in, when revalidate_after has passed since the
// credential was issued or last revalidated, and returns the labels of
// the last answer: the refreshed ID token's labels_claims (or, when the
// provider sent no ID token, its userinfo's). The answer is cached by the
// credential's id, and shared through sh (revalidations.revalidate).
func (s *signIn) revalidate(ctx context.Context, c *token.SignInClaims, sh signInShare) (map[string][]string, error) {
	now := s.now()
	sh.hold = signInHold(s.cfg.Timeout())
	return s.seen.revalidate(ctx, c, now, s.cfg.Revalidate(), sh, func(last revalidation) (revalidation, error) {
		if last.refresh == "" {
			return revalidation{}, fmt.Errorf("oidc_auth: %s was vouched for at %s and the provider gave no refresh token to ask again", c.Account, last.at.UTC().Format(time.RFC3339))
		}
		verifier, oc, err := s.discover(ctx)
		if err != nil {
			return revalidation{}, fmt.Errorf("%w: %w", errProviderDown, err)
		}
		ctx := s.ctx(ctx)
		tok, err := oc.TokenSource(ctx, &oauth2.Token{RefreshToken: last.refresh, Expiry: now.Add(-time.Minute)}).Token()
		if err != nil {
			var re *oauth2.RetrieveError
			if errors.As(err, &re) {
				return revalidation{}, fmt.Errorf("oidc_auth: the provider refused %s's refresh token: %w", c.Account, err)
			}
			return revalidation{}, fmt.Errorf("%w: %w", errProviderDown, err)
		}
		labels, err := s.refreshedLabels(ctx, verifier, tok, c.Subject)
		if err != nil {
			return revalidation{}, err
		}
		return revalidated(c, now, last, tok, labels), nil
	})
}

// revalidated is the revalidation of c at now after a refresh grant
// answered tok: the refresh token to use next is tok's when the provider
// rotated it, last's otherwise.
func revalidated(c *token.SignInClaims, now time.Time, last revalidation, tok *oauth2.Token, labels map[string][]string) revalidation {
	next := revalidation{at: now, refresh: last.refresh, labels: labels, expires: c.ExpiresAt}
	if tok.RefreshToken != "" {
		next.refresh = tok.RefreshToken // rotated
	}
	return next
}

// refreshedLabels returns the labels of a refresh grant's answer for
// subject: from its ID token, which must be subject's, as at the sign-in;
// without one (OpenID Connect lets a provider leave it out), from the
// userinfo endpoint with the new access token, when labels_claims is set.
// A provider with neither gives no labels.
func (s *signIn) refreshedLabels(ctx context.Context, verifier *oidc.IDTokenVerifier, tok *oauth2.Token, subject string) (map[string][]string, error) {
	var claims map[string]any
	if raw, _ := tok.Extra("id_token").(string); raw != "" {
		idt, err := verifier.Verify(ctx, raw)
		if err != nil {
			return nil, fmt.Errorf("oidc_auth: refreshed ID token: %w", err)
		}
		if idt.Subject != subject {
			return nil, fmt.Errorf("oidc_auth: refreshed ID token is for subject %q, not %q", idt.Subject, subject)
		}
		if err := idt.Claims(&claims); err != nil {
			return nil, fmt.Errorf("oidc_auth: refreshed ID token's claims: %w", err)
		}
		return claimLabels(claims, s.cfg.Labels()), nil
	}
	if len(s.cfg.Labels()) == 0 {
		return nil, nil
	}
	s.mu.Lock()
	p := s.provider
	s.mu.Unlock()
	if p.UserInfoEndpoint() == "" {
		return nil, nil
	}
	ui, err := p.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if ue := (*url.Error)(nil); errors.As(err, &ue) {
		return nil, fmt.Errorf("%w: userinfo: %w", errProviderDown, err)
	} else if err != nil {
		return nil, fmt.Errorf("oidc_auth: userinfo refused %s's new access token: %w", subject, err)
	}
	if ui.Subject != subject {
		return nil, fmt.Errorf("oidc_auth: userinfo is for subject %q, not %q", ui.Subject, subject)
	}
	if err := ui.Claims(&claims); err != nil {
		return nil, fmt.Errorf("oidc_auth: userinfo claims: %w", err)
	}
	return claimLabels(claims, s.cfg.Labels()), nil
}

// revalidation is the cached result of asking the provider about a
// credential: when, the refresh token to use next time (a provider may
// rotate it) and the labels it gave.
type revalidation struct {
	at      time.Time
	refresh string
	labels  map[string][]string
	expires time.Time // the credential's own expiry: the entry is dropped then
}

// maxRevalidations bounds the revalidation cache; when full, expired
// entries are dropped, and then everything.
const maxRevalidations = 10000

// revalidations caches a flow's revalidations by credential id, per
// replica and state (a reload starts empty).
type revalidations struct {
	mu      sync.Mutex
	checked map[string]revalidation
}

// revalidate returns c's labels: those of its last revalidation while
// every has not passed since it, otherwise those of ask's, which asks the
// provider after the last revalidation (its refresh token) and is then
// remembered. With a shared store (sh.store), the last revalidation is
// the newer of this replica's and the store's, one replica at a time asks
// (signInShare.lead) and the answer is saved there for the others.
func (r *revalidations) revalidate(ctx context.Context, c *token.SignInClaims, now time.Time, every time.Duration, sh signInShare,
	ask func(last revalidation) (revalidation, error)) (map[string][]string, error) {
	last, due := r.due(c, now, every)
	if !due {
		return last.labels, nil
	}
	if sh.store != nil {
		var fresh bool
		var release func()
		if last, fresh, release = sh.lead(ctx, r, c, last, now, every); fresh {
			return last.labels, nil
		}
		defer release()
	}
	next, err := ask(last)
	if err != nil {
		return nil, err
	}
	r.remember(c.ID, next, now)
	if sh.store != nil {
		sh.save(c, next, now)
	}
	return next.labels, nil
}

// due returns c's last revalidation or, when there is none here, its
// sign-in (the issue time, the sealed token and the credential's labels),
// and whether every has passed since then.
func (r *revalidations) due(c *token.SignInClaims, now time.Time, every time.Duration) (revalidation, bool) {
	r.mu.Lock()
	v, ok := r.checked[c.ID]
	r.mu.Unlock()
	if !ok {
		v = revalidation{at: c.IssuedAt, refresh: c.RefreshToken, labels: c.Labels, expires: c.ExpiresAt}
	}
	return v, now.Sub(v.at) >= every
}

// remember stores v under id; when the cache is full, expired entries are
// dropped first, and then everything.
func (r *revalidations) remember(id string, v revalidation, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.checked == nil {
		r.checked = map[string]revalidation{}
	}
	if len(r.checked) >= maxRevalidations {
		for k, e := range r.checked {
			if now.After(e.expires) {
				delete(r.checked, k)
			}
		}
		if len(r.checked) >= maxRevalidations {
			clear(r.checked)
		}
	}
	r.checked[id] = v
}
