// Package auth is Gatehouse's HTTP side: it parses token requests,
// authenticates them through the authenticator chain, decides every
// requested scope with the ACL and answers with a signed token, or with an
// errcode JSON body that says what went wrong without revealing internals.
//
// A registry configured with auth.token sends clients here:
//
//	GET {path_prefix}/auth?service=registry&scope=repository:alice/app:pull,push
//	Authorization: Basic …
//
//	200 {"token":"…","access_token":"…","expires_in":900,"issued_at":"…"}
package auth

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/acl"
	"github.com/gatehouse/gatehouse/authn"
	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/internal/cfgerr"
	"github.com/gatehouse/gatehouse/token"
)

// RequestTimeout bounds the work on one token request, backends included.
const RequestTimeout = 10 * time.Second

// Server answers token requests. It is an http.Handler.
type Server struct {
	state  atomic.Pointer[state]
	logger *slog.Logger
	now    func() time.Time
}

// state is everything built from one configuration.
type state struct {
	cfg      *config.Config
	prefix   string
	ipc      clientIPConfig
	chain    *chain
	acl      *acl.ACL
	signer   *token.Signer
	refresh  *token.Refresher // nil when OAuth2 is off
	backends []authn.Authenticator
}

// Option configures a Server.
type Option func(*Server)

// WithLogger sets where the server logs; the default discards.
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.logger = l } }

// WithClock sets the clock used for token times (tests).
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// New builds a Server from cfg: it reads the key pair and the files the
// configuration names, and compiles the ACL. Problems are reported as a
// *config.Error naming the lines of cfg's file.
func New(cfg *config.Config, opts ...Option) (*Server, error) {
	s := &Server{logger: slog.New(slog.DiscardHandler), now: time.Now}
	for _, o := range opts {
		o(s)
	}
	st, err := s.build(cfg)
	if err != nil {
		return nil, err
	}
	s.state.Store(st)
	return s, nil
}

func (s *Server) build(cfg *config.Config) (*state, error) {
	var errs []error
	st := &state{
		cfg:    cfg,
		prefix: cfg.Server.PathPrefix,
		ipc:    clientIPConfig{header: cfg.Server.RealIPHeader, pos: cfg.Server.RealIPPos},
	}
	signer, err := cfg.Token.NewSigner(token.WithClock(s.now), token.WithLogger(s.logger))
	if err != nil {
		errs = append(errs, cfgerr.At(err, "token"))
	}
	st.signer = signer
	if signer != nil {
		st.refresh = signer.Refresher()
	}
	if len(cfg.Users) > 0 {
		static, err := authn.NewStatic(cfg.Users)
		if err != nil {
			errs = append(errs, cfgerr.At(err, "users"))
		} else {
			st.backends = append(st.backends, static)
		}
	}
	if cfg.Htpasswd != nil {
		h, err := authn.NewHtpasswd(*cfg.Htpasswd)
		if err != nil {
			errs = append(errs, cfgerr.At(err, "htpasswd_auth"))
		} else {
			st.backends = append(st.backends, h)
		}
	}
	st.acl, err = acl.Compile(cfg.ACL, acl.WithLogger(s.logger))
	if err != nil {
		errs = append(errs, cfgerr.At(err, "acl"))
	}
	if len(errs) > 0 {
		st.close()
		return nil, cfg.Annotate(errors.Join(errs...))
	}
	issuer := cfg.Token.Issuer
	if st.chain, err = newChain(st.backends, issuer); err != nil {
		st.close()
		return nil, err
	}
	return st, nil
}

// close releases what the state's backends hold.
func (st *state) close() {
	for _, b := range st.backends {
		if c, ok := b.(io.Closer); ok {
			_ = c.Close()
		}
	}
}

// Close releases the backends of the current configuration.
func (s *Server) Close() error {
	if st := s.state.Swap(nil); st != nil {
		st.close()
	}
	return nil
}

// Config returns the configuration being served.
func (s *Server) Config() *config.Config {
	if st := s.state.Load(); st != nil {
		return st.cfg
	}
	return nil
}

// ServeHTTP routes {path_prefix}/auth and {path_prefix}/auth/token to the
// token endpoint; everything else is 404.
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
	switch r.URL.Path {
	case st.prefix + "/auth", st.prefix + "/auth/token":
	case st.prefix + "/.well-known/jwks.json":
		servePublished(w, r, "application/json", st.signer.JWKSJSON())
		return
	case st.prefix + "/.well-known/rootcertbundle.pem":
		servePublished(w, r, "application/x-pem-file", st.signer.CertificateBundle())
		return
	default:
		writeError(w, &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: "not found"})
		return
	}
	switch {
	case r.Method == http.MethodGet:
		s.serveToken(w, r, st)
	case r.Method == http.MethodPost && st.refresh != nil:
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

// servePublished answers GET and HEAD for a published document.
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

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request, st *state) {
	start := s.now()
	var req *Request
	var e *Error
	if r.Method == http.MethodPost {
		req, e = parsePost(w, r, st.ipc)
	} else {
		req, e = parseRequest(r, st.ipc, st.refresh != nil)
	}
	if e != nil {
		s.fail(w, r, nil, e)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), RequestTimeout)
	defer cancel()
	id, e := st.identify(ctx, req)
	if e != nil {
		s.fail(w, r, req, e)
		return
	}
	access, decisions := st.authorize(req, id)
	resp, err := st.respond(req, id, access)
	if err != nil {
		s.fail(w, r, req, &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error", Err: err})
		return
	}
	writeJSON(w, resp)
	s.logger.LogAttrs(ctx, slog.LevelInfo, "token issued",
		slog.String("account", id.Account),
		slog.String("authenticator", id.Backend),
		slog.String("client_ip", ipString(req.IP)),
		slog.String("grant", grantName(req)),
		slog.String("client_id", req.ClientID),
		slog.String("service", req.Service),
		slog.Any("requested", scopeStrings(req.Scopes)),
		slog.Any("granted", decisions),
		slog.Duration("latency", s.now().Sub(start)),
	)
}

// fail answers with e and logs the precise reason.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, req *Request, e *Error) {
	writeError(w, e)
	attrs := []slog.Attr{slog.Int("status", e.Status), slog.String("message", e.Message)}
	if e.Err != nil {
		attrs = append(attrs, slog.String("reason", e.Err.Error()))
	}
	if req != nil {
		attrs = append(attrs, slog.String("account", req.Account), slog.String("client_ip", ipString(req.IP)), slog.String("service", req.Service))
	} else {
		attrs = append(attrs, slog.String("remote", r.RemoteAddr))
	}
	level := slog.LevelInfo
	if e.Status >= 500 {
		level = slog.LevelError
	}
	s.logger.LogAttrs(r.Context(), level, "token request refused", attrs...)
}
