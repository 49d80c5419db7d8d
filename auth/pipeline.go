package auth

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/gatehouse/gatehouse/token"
)

// serveToken answers a token request. It reads top to bottom as the stages
// of a request (docs/architecture.md), each a function with one input and
// one output, in its own file:
//
//	parse         request.go, scope.go   *http.Request → *Request (bounded, linear in its size)
//	authenticate  throttle.go, chain.go  *Request → identity (the throttle's gate, then the credential)
//	authorize     authz.go               identity, scopes → grant (the authorizers, in docker_auth's order)
//	issue         respond.go, audit.go   *grant → the signed token, the response, metrics and the audit line
//
// Any stage may refuse with an *Error: fail writes it, counts it and logs
// the precise reason. The grant cache (grants.go) wraps parse through
// authorize for a repeated GET: a hit goes straight to issue, after the
// throttle's gate.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request, st *state) {
	start := s.now()
	var key grantKey
	remember := false
	if r.Method == http.MethodGet && st.grants != nil {
		var g *grant
		if g, key, remember = s.cachedGrant(r, st); g != nil {
			s.serveGrant(w, r, st, g, start)
			return
		}
	}
	req, e := st.parse(w, r)
	if e != nil {
		s.fail(w, r, nil, e, start)
		return
	}
	ctx := withLazyDeadline(r.Context(), time.Now().Add(RequestTimeout)) // no timer unless a backend waits
	defer ctx.stop()
	id, e := s.authenticate(ctx, st, req)
	if e != nil {
		s.fail(w, r, req, e, start)
		return
	}
	g, e := s.authorize(st, req, &id)
	if e != nil {
		s.fail(w, r, req, e, start)
		return
	}
	if s.issue(ctx, w, r, st, &g, start) && remember && cacheable(req, &id, g.decisions) {
		st.grants.put(key, newGrant(req, id, g.access, g.decisions, g.complete), id.until)
	}
}

// authenticate is the gate and the check. Anonymous requests try no
// credential: they are neither refused nor counted by the throttle. For
// the others, a blocked client gets 429 before any work (throttle.go admit);
// each password check the chain then runs takes a reservation in the
// client's failure budget (req.attempt), settled by the outcome: a 401 is a
// failure, a success clears the client's record, an outage is neither.
//
// A tokens-only account (access_tokens.tokens_only) that proved itself
// with its password, or with a refresh token of a password login, is then
// refused (passwordRefused): the password was right, so the throttle
// counts a success.
func (s *Server) authenticate(ctx context.Context, st *state, req *Request) (identity, *Error) {
	id, e := s.authenticateCredentials(ctx, st, req)
	if e == nil {
		e = st.passwordRefused(req, &id)
	}
	return id, e
}

// authenticateCredentials is authenticate without the tokens-only rule.
func (s *Server) authenticateCredentials(ctx context.Context, st *state, req *Request) (identity, *Error) {
	if !req.HasCredentials {
		return st.identify(ctx, req)
	}
	if wait := s.throttle.admit(req.Account, req.IP); wait > 0 {
		return identity{}, tooMany(wait)
	}
	if req.malformedAccount {
		s.throttle.fail(req.Account, req.IP)
		return identity{}, st.chain.unauthorized(msgBadCredentials, errMalformedAccount)
	}
	req.attempt = attempt{t: s.throttle, account: req.Account, ip: req.IP}
	id, e := st.identify(ctx, req)
	a := req.attempt
	req.attempt = attempt{}
	v := verdictNone
	switch {
	case e == nil:
		v = verdictSuccess
	case e.Status == http.StatusUnauthorized:
		v = verdictFailure
	}
	switch {
	case a.reserved:
		s.throttle.settle(a.account, a.ip, v)
	case v == verdictSuccess:
		s.throttle.succeed(id.Account, req.IP)
	case v == verdictFailure:
		s.throttle.fail(req.Account, req.IP)
	}
	return id, e
}

// authorize decides every requested scope for id (state.decide) and times
// it. Only an authorizer that could not answer refuses (503): a scope
// nothing grants stays in the token with no actions.
//
// The grant is returned by value: it lives in serveToken's frame, and
// only the grant cache's copy (newGrant) goes to the heap. A *grant
// returned from here would be one allocation more per request.
func (s *Server) authorize(st *state, req *Request, id *identity) (grant, *Error) {
	t := s.now()
	access, decisions, complete, err := st.decide(req, id)
	s.metrics.authzStage.Observe(s.now().Sub(t).Seconds())
	if err != nil {
		return grant{}, &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: "authorization backend unavailable, try again later", Err: err}
	}
	g := grant{req: req, id: *id, access: access, decisions: decisions, complete: complete}
	narrowByToken(&g)
	return g, nil
}

// issue signs and writes the token g grants, counts it and writes its
// audit line. It reports whether a token was issued.
func (s *Server) issue(ctx context.Context, w http.ResponseWriter, r *http.Request, st *state, g *grant, start time.Time) bool {
	tSign := s.now()
	resp, err := st.respond(ctx, g.req, &g.id, g.access)
	end := s.now()
	s.metrics.signStage.Observe(end.Sub(tSign).Seconds())
	switch {
	case errors.Is(err, token.ErrSignerUnavailable):
		s.metrics.signerErrors.WithLabelValues(st.signer.KeyKind()).Inc()
		s.fail(w, r, g.req, &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable,
			Message: "token signing is temporarily unavailable; try again", RetryAfter: 1, Err: err}, start)
		return false
	case err != nil:
		s.fail(w, r, g.req, &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error", Err: err}, start)
		return false
	}
	writeJSON(w, &resp)
	outcome := OutcomeIssued
	if !g.complete {
		outcome = OutcomeDenied
	}
	latency := end.Sub(start)
	grantType := grantName(g.req)
	s.metrics.observeRequest(outcome, grantType, latency)
	s.audit.write(ctx, &auditRecord{
		time:          end,
		outcome:       outcome,
		account:       g.id.Account,
		authenticator: g.id.Backend,
		clientIP:      g.req.IP,
		grant:         grantType,
		clientID:      g.req.ClientID,
		service:       g.req.Service,
		decisions:     g.decisions,
		refreshIssued: resp.RefreshToken != "" && g.req.Grant != GrantRefresh,
		tokenName:     g.req.tokenName,
		tokenID:       g.req.tokenID,
		latency:       latency,
	})
	return true
}

// fail answers with e, counts it and logs the precise reason.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, req *Request, e *Error, start time.Time) {
	writeError(w, e)
	outcome, grant := outcomeOf(e), "unknown"
	if req != nil {
		grant = grantName(req)
	}
	latency := s.now().Sub(start)
	s.metrics.observeRequest(outcome, grant, latency)
	attrs := []slog.Attr{slog.String("outcome", outcome), slog.Int("status", e.Status), slog.String("message", e.Message)}
	if e.Err != nil {
		attrs = append(attrs, slog.String("reason", e.Err.Error()))
	}
	if req != nil {
		attrs = append(attrs, slog.String("account", req.Account), slog.String("client_ip", ipString(req.IP)),
			slog.String("grant", grant), slog.String("service", req.Service))
		if req.tokenID != "" {
			attrs = append(attrs, slog.String("token_name", req.tokenName), slog.String("token_id", req.tokenID))
		}
	} else {
		attrs = append(attrs, slog.String("remote", r.RemoteAddr))
	}
	attrs = append(attrs, slog.Duration("latency", latency))
	level := slog.LevelInfo
	if e.Status >= 500 {
		level = slog.LevelError
	}
	s.logger.LogAttrs(r.Context(), level, "token request refused", attrs...)
}
