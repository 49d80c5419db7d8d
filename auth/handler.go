package auth

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/gatehouse/gatehouse/authn"
)

// ServeHTTP routes, under {path_prefix}:
//
//	/auth, /auth/token              the token endpoint (GET; POST for OAuth2)
//	/oidc_auth                      browser sign-in (oidc_auth; signin.go); / redirects there
//	/google_auth                    browser sign-in (google_auth: oidc_auth against Google; signin.go)
//	/gitlab_auth                    browser sign-in (gitlab_auth; signin_gitlab.go)
//	/github_auth                    browser sign-in (github_auth; signin_github.go)
//	/access_tokens                  self-service minting of access tokens (POST; mint.go)
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
	case st.prefix + "/oidc_auth", st.prefix + "/google_auth", st.prefix + "/github_auth", st.prefix + "/gitlab_auth":
		serve := s.signInRoute(st, path[len(st.prefix):])
		if serve == nil { // the section is not configured
			writeError(w, &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: "not found"})
			return
		}
		serve(w, r)
		return
	case st.prefix + "/", st.prefix:
		if st.signIns() == nil || path == "" {
			writeError(w, &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: "not found"})
			return
		}
		serveRoot(w, r, st)
		return
	case st.prefix + "/access_tokens":
		s.serveMint(w, r, st)
		return
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
	for _, a := range st.authorizers {
		if why := a.notReady(); why != "" {
			failing[a.source()] = why
		}
	}
	if why, err := st.signer.NotReady(ctx); why != "" {
		failing["signer"] = why
		s.logger.Warn("readiness check failed", "signer", st.signer.KeyKind(), "err", err)
	}
	body := map[string]any{"ready": len(failing) == 0, "failing": failing}
	if why := s.throttle.storeStatus(ctx); why != "" {
		// Not a failure: the replica still throttles, with its own counts.
		body["degraded"] = map[string]string{"throttle_store": why}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if len(failing) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(body)
}

// signInRoute returns what serves a sign-in flow's path (below the prefix),
// or nil when its section is not configured.
func (s *Server) signInRoute(st *state, path string) http.HandlerFunc {
	switch {
	case path == "/oidc_auth" && st.signin != nil:
		return func(w http.ResponseWriter, r *http.Request) { s.serveSignIn(w, r, st, st.signin) }
	case path == "/google_auth" && st.google != nil:
		return func(w http.ResponseWriter, r *http.Request) { s.serveSignIn(w, r, st, st.google) }
	case path == "/github_auth" && st.github != nil:
		return func(w http.ResponseWriter, r *http.Request) { s.serveGithub(w, r, st) }
	case path == "/gitlab_auth" && st.gitlab != nil:
		return func(w http.ResponseWriter, r *http.Request) { s.serveGitlab(w, r, st) }
	}
	return nil
}
