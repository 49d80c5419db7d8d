package auth

import (
	"context"
	"errors"
	"fmt"

	"github.com/gatehouse/gatehouse/authn"
)

// msgBadToken is the 401 message for a workload identity token that is not
// accepted; the precise reason goes to the log and the audit line only.
const msgBadToken = "invalid workload identity token"

// workloadIdentity handles a password shaped like a JWT when
// workload_identity is configured: a token from a trusted issuer is
// verified (through the credential cache, so a job pulling many layers
// verifies it once), one from any other issuer is refused at once, never
// tried as a password by the chain. handled is false for anything else,
// Gatehouse's own tokens (iss = token.issuer) included, which go on to the
// chain as before.
func (st *state) workloadIdentity(ctx context.Context, req *Request) (id identity, e *Error, handled bool) {
	if st.workload == nil || !req.HasCredentials || req.Grant == GrantRefresh {
		return identity{}, nil, false
	}
	iss, isJWT := authn.JWTIssuer(req.Password)
	if !isJWT || iss == st.cfg.Token.Issuer {
		return identity{}, nil, false
	}
	if !st.workload.Trusts(iss) {
		return identity{}, st.chain.unauthorized(msgBadToken, fmt.Errorf("workload_identity: a JWT from issuer %q, which is not configured, is not tried as a password", iss)), true
	}
	id, e = st.chain.authenticateWorkload(ctx, st.workload, req)
	return id, e, true
}

// authenticateWorkload verifies a workload token with w through the
// credential cache (keyed by the token's HMAC, kept until the token's exp
// at the latest) within a check slot and the client's throttle
// reservation. Its identities get no refresh token.
func (c *chain) authenticateWorkload(ctx context.Context, w *authn.Workload, req *Request) (identity, *Error) {
	var mac *[32]byte
	if c.cache != nil {
		m := c.cache.mac(req.Password)
		mac = &m
	}
	acct, until, _, err := c.check(ctx, w, req.Account, req.Password, mac, &req.attempt)
	switch {
	case err == nil:
		return identity{Account: acct.Name, Labels: acct.Labels, Backend: w.Name(), noRefresh: true, until: until}, nil
	case errors.Is(err, errThrottled):
		return identity{}, req.attempt.refused()
	case errors.Is(err, errBusy):
		return identity{}, c.limit.busy(fmt.Errorf("%s: %w", w.Name(), err))
	case errors.Is(err, authn.ErrBadToken), errors.Is(err, authn.ErrNoMatch), errors.Is(err, authn.ErrWrongPassword):
		return identity{}, c.unauthorized(msgBadToken, fmt.Errorf("workload_identity: user %q: %w", req.Account, err))
	default:
		return identity{}, unavailable(fmt.Errorf("%s: %w", w.Name(), err))
	}
}
