package auth

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gatehouse/gatehouse/authn"
)

// ServeHTTP routes, under {path_prefix}:
//
//	/auth, /auth/token              the token endpoint (GET; POST for OAuth2)
//	/.well-known/jwks.json          the signing keys as a JWKS (?key=current|next: one key, for zot)
//	/.well-known/rootcertbundle.pem the signing certificates
//	/metrics                        Prometheus metrics (unless server.metrics_addr is set)
//	/healthz, /readyz               liveness and readiness (also without the prefix)
//
// Everything else is 404.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := s.state.Load()
	if st == nil {
		writeError(w, &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: "server is shutting down"})
		return
	}
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.logger.Error("panic serving request", "path", r.URL.Path, "panic", v)
			writeError(w, &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error"})
		}
	}()
	path := r.URL.Path
	switch path {
	case st.prefix + "/auth", st.prefix + "/auth/token":
	case st.prefix + "/.well-known/jwks.json":
		serveJWKS(w, r, st.signer)
		return
	case st.prefix + "/.well-known/rootcertbundle.pem":
		servePublished(w, r, "application/x-pem-file", st.signer.CertificateBundle())
		return
	case st.prefix + "/healthz", "/healthz":
		servePublished(w, r, "text/plain; charset=utf-8", []byte("ok\n"))
		return
	case st.prefix + "/readyz", "/readyz":
		s.serveReady(w, r, st)
		return
	case st.prefix + "/metrics":
		if st.cfg.Server.MetricsAddr == "" {
			s.metrics.Handler().ServeHTTP(w, r)
			return
		}
		fallthrough
	default:
		writeError(w, &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: "not found"})
		return
	}
	switch {
	case r.Method == http.MethodGet, r.Method == http.MethodPost && st.refresh != nil:
		s.serveToken(w, r, st)
	case r.Method == http.MethodPost:
		// token.oauth2: false. 404 is the only answer every client that
		// tries OAuth2 first reads as "use GET instead" (protocol.md §0.8).
		writeError(w, &Error{Status: http.StatusNotFound, Code: CodeUnsupported, Message: "OAuth2 token requests are not enabled; use GET"})
	default:
		w.Header().Set("Allow", "GET, POST")
		writeError(w, &Error{Status: http.StatusMethodNotAllowed, Code: CodeUnsupported, Message: "method not allowed"})
	}
}

// servePublished answers GET and HEAD with a fixed document.
func servePublished(w http.ResponseWriter, r *http.Request, contentType string, body []byte) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, &Error{Status: http.StatusMethodNotAllowed, Code: CodeUnsupported, Message: "method not allowed"})
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}

// ReadyTimeout bounds each backend's readiness check.
const ReadyTimeout = 5 * time.Second

// serveReady answers 200 when a configuration is loaded, every backend
// that can be checked answered within ReadyTimeout and acl_mongo (if
// configured) has loaded its rules; else 503 naming what fails.
func (s *Server) serveReady(w http.ResponseWriter, r *http.Request, st *state) {
	ctx, cancel := context.WithTimeout(r.Context(), ReadyTimeout)
	defer cancel()
	failing := map[string]string{}
	for _, b := range st.backends {
		if c, ok := b.(authn.Checker); ok {
			if err := c.Check(ctx); err != nil {
				failing[b.Name()] = "not answering"
				s.logger.Warn("readiness check failed", "backend", b.Name(), "err", err)
			}
		}
	}
	if st.aclMongo != nil && st.aclMongo.LoadedAt().IsZero() {
		failing["acl_mongo"] = "rules not loaded yet"
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if len(failing) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"ready": len(failing) == 0, "failing": failing})
}

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
	var req *Request
	var e *Error
	if r.Method == http.MethodPost {
		req, e = parsePost(w, r, st.ipc)
	} else {
		req, e = parseRequest(r, st.ipc, st.refresh != nil)
	}
	if e != nil {
		s.fail(w, r, nil, e, start)
		return
	}
	ctx := withLazyDeadline(r.Context(), time.Now().Add(RequestTimeout)) // no timer unless a backend waits
	defer ctx.stop()
	id, e := s.identifyThrottled(ctx, st, req)
	if e != nil {
		s.fail(w, r, req, e, start)
		return
	}
	tAuthz := s.now()
	access, decisions, complete, err := st.authorize(req, &id)
	tSign := s.now()
	s.metrics.authzStage.Observe(tSign.Sub(tAuthz).Seconds())
	if err != nil {
		s.fail(w, r, req, &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: "authorization backend unavailable, try again later", Err: err}, start)
		return
	}
	g := &grant{req: req, id: id, access: access, decisions: decisions, complete: complete}
	if s.issue(ctx, w, r, st, g, start, tSign) && remember && cacheable(req, &id, decisions) {
		st.grants.put(key, newGrant(req, id, access, decisions, complete), id.until)
	}
}

// cachedGrant looks r up in the grant cache: it returns the grant that
// answers r, or nil and the key to remember r's answer under, with
// remember false when r is not to be remembered (malformed: the full path
// answers it) or is throttled (the full path answers 429).
func (s *Server) cachedGrant(r *http.Request, st *state) (g *grant, key grantKey, remember bool) {
	if headerLength(r) > MaxHeaderLength || len(r.URL.RawQuery) > MaxQueryLength {
		return nil, key, false
	}
	ip, e := clientIP(r, st.ipc)
	if e != nil {
		return nil, key, false
	}
	if key, remember = st.grants.key(r, ip); !remember {
		return nil, key, false
	}
	if g = st.grants.get(key); g != nil && g.req.HasCredentials && s.throttle.admit(g.id.Account, ip) > 0 {
		return nil, key, false
	}
	return g, key, true
}

// serveGrant answers a request the grant cache knows: a new token for
// what the same request was granted before.
func (s *Server) serveGrant(w http.ResponseWriter, r *http.Request, st *state, g *grant, start time.Time) {
	if g.req.HasCredentials {
		s.throttle.succeed(g.id.Account, g.req.IP)
	}
	s.metrics.grantHit.Inc()
	s.issue(r.Context(), w, r, st, g, start, start)
}

// issue signs and writes the token g grants, counts it and writes its
// audit line. It reports whether a token was issued.
func (s *Server) issue(ctx context.Context, w http.ResponseWriter, r *http.Request, st *state, g *grant, start, tSign time.Time) bool {
	resp, err := st.respond(g.req, &g.id, g.access)
	end := s.now()
	s.metrics.signStage.Observe(end.Sub(tSign).Seconds())
	if err != nil {
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
