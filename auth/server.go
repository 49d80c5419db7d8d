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
	"errors"
	"io"
	"log/slog"
	"sync"
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
	audit  auditLog // its logger is set by New
	now    func() time.Time
	// googleIssuer is google_auth's issuer: Google but in tests.
	googleIssuer string
	googleCA     string
	version      string
	metrics      *Metrics
	throttle     *throttle
	readOnly     bool // WithReadOnly

	// retiring are the states Reload replaced, each closed by its timer
	// after retireDelay, or by Close if that comes first.
	retireMu sync.Mutex
	retiring map[*state]*time.Timer
}

// state is everything built from one configuration.
type state struct {
	cfg    *config.Config
	prefix string
	ipc    clientIPConfig
	chain  *chain
	acl    *acl.ACL
	// authorizers decide, in order, the scopes acl does not match (authz.go
	// decide): acl_mongo, acl_xorm.
	authorizers []authorizer
	signer      *token.Signer
	refresh     *token.Refresher // nil when OAuth2 is off
	tokens      *accessTokens    // nil without access_tokens
	backends    []authn.Authenticator
	grants      *grantCache // nil when the cache is off
	// workload verifies workload identity tokens (workload.go); nil
	// without workload_identity.
	workload *authn.Workload
	// signin is the oidc_auth browser flow (signin.go); nil without
	// oidc_auth.
	signin *signIn
	// github is the github_auth browser flow (signin_github.go); nil
	// without github_auth.
	github *githubSignIn
	// gitlab is the gitlab_auth browser flow (signin_gitlab.go); nil
	// without gitlab_auth.
	gitlab *gitlabSignIn
	// google is the google_auth browser flow: oidc_auth's against Google
	// (signin.go); nil without google_auth.
	google *signIn
	// throttle is the Server's: its store (throttle.store) also shares
	// the sign-in revalidations (signin_share.go).
	throttle *throttle
}

// Option configures a Server.
type Option func(*Server)

// WithLogger sets where the server logs; the default discards.
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.logger = l } }

// WithJSONAuditLog says that the logger writes JSON lines to w, as
// slog.NewJSONHandler(w, opts) with no ReplaceAttr, AddSource or
// attributes of its own does: the audit line of each issued token is then
// encoded by hand and written straight to w, in the same shape, which
// costs a few microseconds less than going through the logger. The
// logger's level still decides whether it is written; every other line
// goes through the logger.
func WithJSONAuditLog(w io.Writer) Option { return func(s *Server) { s.audit.w = w } }

// WithClock sets the clock used for token times (tests).
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// withGoogleIssuer replaces https://accounts.google.com for google_auth:
// tests only, so that a test provider can pose as Google.
// caFile is the test provider's CA.
func withGoogleIssuer(issuer, caFile string) Option {
	return func(s *Server) { s.googleIssuer, s.googleCA = issuer, caFile }
}

// WithVersion sets the version reported by gatehouse_build_info.
func WithVersion(v string) Option { return func(s *Server) { s.version = v } }

// WithReadOnly builds the server for a check of the configuration
// (gatehouse validate and check): it writes no file. With
// token.generate_if_missing and no key pair, the pair is generated in memory
// and a warning says serving would create it.
func WithReadOnly() Option { return func(s *Server) { s.readOnly = true } }

// New builds a Server from cfg: it reads the key pair and the files the
// configuration names, and compiles the ACL. Problems are reported as a
// *config.Error naming the lines of cfg's file.
func New(cfg *config.Config, opts ...Option) (*Server, error) {
	s := &Server{logger: slog.New(slog.DiscardHandler), now: time.Now, version: "(devel)", googleIssuer: config.GoogleIssuer}
	for _, o := range opts {
		o(s)
	}
	s.audit.logger = s.logger
	s.metrics = newMetrics(s.version)
	s.metrics.watchGrantCache(func() (int, int) {
		if st := s.state.Load(); st != nil && st.grants != nil {
			return st.grants.usage()
		}
		return 0, 0
	})
	s.metrics.registry.MustRegister(aclCollector{s})
	s.throttle = newThrottle(s.now)
	s.throttle.logger = s.logger
	s.throttle.storeMetrics = newStoreMetrics(s.metrics.registry)
	st, err := s.build(cfg)
	if err != nil {
		return nil, err
	}
	if err := s.throttle.useStore(cfg.Throttle.Store); err != nil {
		st.close()
		return nil, cfg.Annotate(cfgerr.At(err, "throttle", "store"))
	}
	s.throttle.configure(cfg.Throttle)
	s.state.Store(st)
	s.metrics.lastReload.SetToCurrentTime()
	return s, nil
}

// retireDelay is how long a replaced configuration's backends stay open
// after a reload, so requests already using them finish.
const retireDelay = RequestTimeout + 5*time.Second

// Reload builds a new state from cfg and swaps it in atomically: requests
// in flight finish with the old one, the next ones use the new one. If cfg
// cannot be built, the error is returned (a *config.Error), the failure is
// counted and the current configuration keeps serving.
func (s *Server) Reload(cfg *config.Config) error {
	st, err := s.build(cfg)
	if err != nil {
		s.metrics.reloads.WithLabelValues("failure").Inc()
		return err
	}
	if err := s.throttle.useStore(cfg.Throttle.Store); err != nil {
		st.close()
		s.metrics.reloads.WithLabelValues("failure").Inc()
		return cfg.Annotate(cfgerr.At(err, "throttle", "store"))
	}
	s.throttle.configure(cfg.Throttle)
	old := s.state.Swap(st)
	s.metrics.reloads.WithLabelValues("success").Inc()
	s.metrics.lastReload.SetToCurrentTime()
	if old != nil {
		s.retire(old)
	}
	return nil
}

// retire closes st after retireDelay, or at Close if that comes first, so
// that closing the server does not leave a replaced configuration's
// clients and goroutines behind.
func (s *Server) retire(st *state) {
	s.retireMu.Lock()
	defer s.retireMu.Unlock()
	if s.retiring == nil {
		s.retiring = map[*state]*time.Timer{}
	}
	s.retiring[st] = time.AfterFunc(retireDelay, func() {
		s.retireMu.Lock()
		delete(s.retiring, st)
		s.retireMu.Unlock()
		st.close()
	})
}

// CountReloadFailure counts a reload that failed before a configuration
// could be built (the file did not load).
func (s *Server) CountReloadFailure() { s.metrics.reloads.WithLabelValues("failure").Inc() }

// Metrics returns the server's collectors.
func (s *Server) Metrics() *Metrics { return s.metrics }

func (s *Server) build(cfg *config.Config) (*state, error) {
	var errs []error
	st := &state{
		cfg:      cfg,
		prefix:   cfg.Server.PathPrefix,
		ipc:      clientIPConfig{header: cfg.Server.RealIPHeader, pos: cfg.Server.RealIPPos},
		throttle: s.throttle,
	}
	topts := []token.Option{token.WithClock(s.now), token.WithLogger(s.logger)}
	if s.readOnly {
		topts = append(topts, token.WithReadOnly())
	}
	signer, err := cfg.Token.NewSigner(topts...)
	if err != nil {
		errs = append(errs, cfgerr.At(err, "token"))
	}
	st.signer = signer
	if signer != nil {
		st.refresh = signer.Refresher()
	}
	if st.tokens, err = newAccessTokens(cfg, signer, s.now); err != nil {
		errs = append(errs, cfgerr.At(err, "access_tokens"))
	}
	for _, f := range authenticators {
		b, err := f.build(cfg, s.logger)
		switch {
		case err != nil:
			errs = append(errs, cfgerr.At(err, f.section))
		case b != nil:
			st.backends = append(st.backends, b)
		}
	}
	if len(cfg.Workload) > 0 {
		st.workload, err = authn.NewWorkload(cfg.Workload, authn.WithWorkloadClock(s.now))
		if err != nil {
			errs = append(errs, cfgerr.At(err, "workload_identity"))
		}
	}
	if cfg.OIDCAuth != nil && signer != nil {
		if st.signin, err = newSignIn(cfg.OIDCAuth, signInBackend, "", signer, s.now); err != nil {
			errs = append(errs, cfgerr.At(err, "oidc_auth"))
		}
	}
	if cfg.GithubAuth != nil && signer != nil {
		if st.github, err = newGithubSignIn(cfg.GithubAuth, signer, s.now); err != nil {
			errs = append(errs, cfgerr.At(err, "github_auth"))
		}
	}
	if cfg.GoogleAuth != nil && signer != nil {
		o := cfg.GoogleAuth.OIDC(s.googleIssuer)
		o.CAFile = s.googleCA
		if st.google, err = newSignIn(o, googleBackend, cfg.GoogleAuth.Domain, signer, s.now); err != nil {
			errs = append(errs, cfgerr.At(err, "google_auth"))
		}
	}
	if cfg.GitlabAuth != nil && signer != nil {
		if st.gitlab, err = newGitlabSignIn(cfg.GitlabAuth, signer, s.now); err != nil {
			errs = append(errs, cfgerr.At(err, "gitlab_auth"))
		}
	}
	st.acl, err = acl.Compile(cfg.ACL, acl.WithLogger(s.logger))
	if err != nil {
		errs = append(errs, cfgerr.At(err, "acl"))
	}
	for _, f := range authorizers {
		if len(errs) > 0 {
			break // no client is started for a configuration already refused
		}
		a, err := f.build(cfg, s.logger, s.state.Load())
		switch {
		case err != nil:
			errs = append(errs, cfgerr.At(err, f.section))
		case a != nil:
			st.authorizers = append(st.authorizers, a)
		}
	}
	if len(errs) > 0 {
		st.close()
		return nil, cfg.Annotate(errors.Join(errs...))
	}
	issuer := cfg.Token.Issuer
	if st.chain, err = newChain(st.backends, issuer, s.metrics, chainOptions{
		cacheTTL:     cfg.Cache.TTL.Or(config.DefaultCacheTTL),
		cacheEntries: cfg.Cache.Entries(),
		checks:       cfg.Limits.Checks(),
		checkWait:    cfg.Limits.CheckWait.Or(config.DefaultCheckWait),
		now:          s.now,
	}); err != nil {
		st.close()
		return nil, err
	}
	if highest, lowest := bcryptCosts(st.backends); highest != lowest {
		s.logger.Warn("bcrypt costs are mixed: every password check is padded to the time of the costliest, so cheaper hashes buy no speed; rehash them at one cost",
			"lowest", lowest, "highest", highest, "floor", st.chain.checkFloor().Round(time.Millisecond))
	}
	if st.grants, err = newGrantCache(cfg.Cache.TTL.Or(config.DefaultCacheTTL), cfg.Cache.Entries(), cfg.Cache.Bytes(), s.now); err != nil {
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
	for _, a := range st.authorizers {
		_ = a.Close()
	}
	if st.workload != nil {
		_ = st.workload.Close()
	}
	_ = st.signer.Close()
}

// mongoACL returns the state's acl_mongo, or nil.
func (st *state) mongoACL() *acl.Mongo {
	for _, a := range st.authorizers {
		if m, ok := a.(mongoACL); ok {
			return m.d.(*acl.Mongo)
		}
	}
	return nil
}

// xormACL returns the state's acl_xorm, or nil.
func (st *state) xormACL() *acl.Xorm {
	for _, a := range st.authorizers {
		if x, ok := a.(xormACL); ok {
			return x.d.(*acl.Xorm)
		}
	}
	return nil
}

// Close releases the backends of the current configuration, and of those
// replaced by Reload and not yet retired.
func (s *Server) Close() error {
	s.retireMu.Lock()
	retiring := s.retiring
	s.retiring = nil
	s.retireMu.Unlock()
	for st, t := range retiring {
		t.Stop()
		st.close() // closing twice is harmless: a timer that fired closes too
	}
	if st := s.state.Swap(nil); st != nil {
		st.close()
	}
	s.throttle.closeStore()
	return nil
}

// Config returns the configuration being served.
func (s *Server) Config() *config.Config {
	if st := s.state.Load(); st != nil {
		return st.cfg
	}
	return nil
}
