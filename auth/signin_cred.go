package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

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
// passed since it was last vouched for.
func (st *state) identifySignIn(ctx context.Context, req *Request) (identity, *Error) {
	c, err := st.signIns().Verify(req.Password)
	if err != nil {
		return identity{}, st.chain.unauthorized(msgBadSignIn, err)
	}
	if req.Account != c.Account {
		return identity{}, st.chain.unauthorized(msgBadSignIn,
			fmt.Errorf("oidc_auth: user name %q is not the credential's account %q (log in with -u %s)", req.Account, c.Account, c.Account))
	}
	var err2 error
	switch {
	case c.Provider == githubBackend && st.github != nil:
		err2 = st.github.revalidate(ctx, c)
	case c.Provider == googleBackend && st.google != nil:
		err2 = st.google.revalidate(ctx, c)
	case c.Provider == gitlabBackend && st.gitlab != nil:
		err2 = st.gitlab.revalidate(ctx, c)
	case c.Provider == signInBackend && st.signin != nil:
		err2 = st.signin.revalidate(ctx, c)
	default:
		err2 = fmt.Errorf("signin: credential from %s, which is not configured", c.Provider)
	}
	if err := err2; err != nil {
		if errors.Is(err, errProviderDown) {
			return identity{}, unavailable(err)
		}
		return identity{}, st.chain.unauthorized(msgBadSignIn, err)
	}
	return identity{Account: c.Account, Labels: authn.Labels(c.Labels), Backend: c.Provider,
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
// credential was issued or last revalidated; the answer is cached by the
// credential's id.
func (s *signIn) revalidate(ctx context.Context, c *token.SignInClaims) error {
	now := s.now()
	s.mu.Lock()
	last, ok := s.checked[c.ID]
	s.mu.Unlock()
	if !ok {
		last = revalidation{at: c.IssuedAt, refresh: c.RefreshToken, expires: c.ExpiresAt}
	}
	if now.Sub(last.at) < s.cfg.Revalidate() {
		return nil
	}
	if last.refresh == "" {
		return fmt.Errorf("oidc_auth: %s was vouched for at %s and the provider gave no refresh token to ask again", c.Account, last.at.UTC().Format(time.RFC3339))
	}
	verifier, oc, err := s.discover(ctx)
	if err != nil {
		return fmt.Errorf("%w: %w", errProviderDown, err)
	}
	ctx = s.ctx(ctx)
	tok, err := oc.TokenSource(ctx, &oauth2.Token{RefreshToken: last.refresh, Expiry: now.Add(-time.Minute)}).Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			return fmt.Errorf("oidc_auth: the provider refused %s's refresh token: %w", c.Account, err)
		}
		return fmt.Errorf("%w: %w", errProviderDown, err)
	}
	if raw, _ := tok.Extra("id_token").(string); raw != "" {
		idt, err := verifier.Verify(ctx, raw)
		if err != nil {
			return fmt.Errorf("oidc_auth: refreshed ID token: %w", err)
		}
		if idt.Subject != c.Subject {
			return fmt.Errorf("oidc_auth: refreshed ID token is for subject %q, not %q", idt.Subject, c.Subject)
		}
	}
	next := revalidation{at: now, refresh: last.refresh, expires: c.ExpiresAt}
	if tok.RefreshToken != "" {
		next.refresh = tok.RefreshToken // rotated
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	remember(s.checked, c.ID, next, now)
	return nil
}

// remember stores r under id; when the cache is full, expired entries are
// dropped first, and then everything. The caller holds the lock.
func remember(m map[string]revalidation, id string, r revalidation, now time.Time) {
	if len(m) >= maxRevalidations {
		for k, v := range m {
			if now.After(v.expires) {
				delete(m, k)
			}
		}
		if len(m) >= maxRevalidations {
			clear(m)
		}
	}
	m[id] = r
}
