package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	_ "embed" // the sign-in page
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/token"
)

// signInCookie holds, between the redirect to the provider and the
// callback, the nonce the state is bound to and the PKCE verifier.
const (
	signInCookie   = "gatehouse_signin"
	signInStateTTL = 10 * time.Minute
	signInBackend  = "oidc_auth"
	googleBackend  = "google_auth"
)

//go:embed signin.html
var signInHTML string

var signInPage = template.Must(template.New("signin").Parse(signInHTML))

// signIn is the oidc_auth browser flow (docs/sign-in.md) of one state,
// or google_auth's, which is the same flow against Google.
type signIn struct {
	signInBase
	backend string // oidc_auth or google_auth: the path and the credential's provider
	domain  string // google_auth's domain: the ID token's hd claim must equal it
	cfg     *config.OIDCAuth
	client  *http.Client
	oauth   oauth2.Config // Endpoint set once the provider is discovered

	mu       sync.Mutex
	provider *oidc.Provider // discovered on first use
	verifier *oidc.IDTokenVerifier
	seen     revalidations
}

func newSignIn(o *config.OIDCAuth, backend, domain string, signer *token.Signer, now func() time.Time) (*signIn, error) {
	secret, err := o.Secret()
	if err != nil {
		return nil, err
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("oidc_auth: ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("oidc_auth: ca_file %s holds no PEM certificate", o.CAFile)
		}
		transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	s := &signIn{
		signInBase: signInBase{creds: signer.SignIns(), now: now, secure: strings.HasPrefix(o.RedirectURL, "https://")},
		backend:    backend,
		domain:     domain,
		cfg:        o,
		client:     &http.Client{Transport: transport, Timeout: o.Timeout()},
		oauth: oauth2.Config{ClientID: o.ClientID, ClientSecret: secret, RedirectURL: o.RedirectURL,
			Scopes: o.ScopeList()},
	}
	return s, nil
}

// discover fetches the provider's discovery document once; a failure is
// retried on the next request.
func (s *signIn) discover(ctx context.Context) (*oidc.IDTokenVerifier, oauth2.Config, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.provider == nil {
		p, err := oidc.NewProvider(oidc.ClientContext(ctx, s.client), s.cfg.Issuer)
		if err != nil {
			return nil, oauth2.Config{}, fmt.Errorf("oidc_auth: discovery at %s: %w", s.cfg.Issuer, err)
		}
		s.provider = p
		s.verifier = p.Verifier(&oidc.Config{ClientID: s.cfg.ClientID, Now: s.now})
		s.oauth.Endpoint = p.Endpoint()
	}
	return s.verifier, s.oauth, nil
}

func (s *signIn) ctx(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, s.client)
}

// serveSignIn answers {prefix}/oidc_auth (or /google_auth): without code
// and state it starts the flow, with them it is the provider's callback.
func (s *Server) serveSignIn(w http.ResponseWriter, r *http.Request, st *state, si *signIn) {
	s.serveFlow(w, r, "the identity provider", si.backend,
		func() *Error { return s.signInCallback(w, r, st, si) },
		func() *Error { return si.start(w, r, st.prefix) })
}

// serveFlow answers a browser flow's path (only GET, never stored): the
// provider's error parameter is a 400, a request with code or state the
// provider's callback, any other the start; a refusal is logged under
// section.
func (s *Server) serveFlow(w http.ResponseWriter, r *http.Request, provider, section string, callback, start func() *Error) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		writeError(w, &Error{Status: http.StatusMethodNotAllowed, Code: CodeUnsupported, Message: "method not allowed"})
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	q := r.URL.Query()
	var e *Error
	switch {
	case q.Has("error"):
		e = signInRefused(fmt.Sprintf("%s refused the sign-in: %.200s", provider, q.Get("error")), nil)
	case q.Has("code") || q.Has("state"):
		e = callback()
	default:
		e = start()
	}
	if e != nil {
		s.logger.Warn(section+" sign-in refused", "status", e.Status, "msg", e.Message, "err", e.Err)
		writeError(w, e)
	}
}

// signInRefused is a 400 with msg for the browser and err for the log.
func signInRefused(msg string, err error) *Error {
	return &Error{Status: http.StatusBadRequest, Code: CodeBadRequest, Message: msg, Err: err}
}

// start redirects to the provider with a signed, short-lived state bound
// to a cookie, an ID-token nonce and a PKCE challenge.
func (s *signIn) start(w http.ResponseWriter, r *http.Request, prefix string) *Error {
	_, oc, err := s.discover(r.Context())
	if err != nil {
		return unavailable(err)
	}
	nonce, verifier := newNonce(), oauth2.GenerateVerifier()
	path := prefix + "/" + s.backend
	oc.RedirectURL = s.redirectURL(r, path)
	s.setCookie(w, r, path, nonce, verifier)
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce), oauth2.AccessTypeOffline}
	if s.backend == googleBackend {
		// Google gives a refresh token only with consent; hd preselects
		// the domain (a hint: the callback checks the claim).
		opts = append(opts, oauth2.SetAuthURLParam("prompt", "consent"))
		if s.domain != "" {
			opts = append(opts, oauth2.SetAuthURLParam("hd", s.domain))
		}
	}
	u := oc.AuthCodeURL(s.state(nonce), opts...)
	http.Redirect(w, r, u, http.StatusFound)
	return nil
}

// signInCallback exchanges the code, verifies the ID token and renders the
// page with a credential.
func (s *Server) signInCallback(w http.ResponseWriter, r *http.Request, st *state, si *signIn) *Error {
	nonce, pkce, e := si.checkState(r)
	if e != nil {
		return e
	}
	path := st.prefix + "/" + si.backend
	si.clearCookie(w, r, path)
	code := r.URL.Query().Get("code")
	if code == "" {
		return signInRefused("the identity provider sent no code", errors.New("oidc_auth: callback without code"))
	}
	verifier, oc, err := si.discover(r.Context())
	if err != nil {
		return unavailable(err)
	}
	oc.RedirectURL = si.redirectURL(r, path)
	ctx := si.ctx(r.Context())
	tok, err := oc.Exchange(ctx, code, oauth2.VerifierOption(pkce))
	if err != nil {
		return signInRefused("the identity provider did not accept the sign-in code: start again", fmt.Errorf("oidc_auth: code exchange: %w", err))
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := verifier.Verify(ctx, raw)
	if err != nil {
		return signInRefused("the identity provider's ID token does not verify", fmt.Errorf("oidc_auth: %w", err))
	}
	if idt.Nonce != nonce {
		return signInRefused("the identity provider's ID token is not for this sign-in", errors.New("oidc_auth: ID token nonce mismatch"))
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return signInRefused("the identity provider's ID token is malformed", fmt.Errorf("oidc_auth: claims: %w", err))
	}
	if hd, _ := claims["hd"].(string); si.domain != "" && hd != si.domain {
		return &Error{Status: http.StatusForbidden, Code: CodeDenied, Message: "this account is not in the domain " + si.domain,
			Err: fmt.Errorf("%s: subject %s: hd claim %q, want %q", si.backend, idt.Subject, hd, si.domain)}
	}
	account, _ := claims[si.cfg.Claim()].(string)
	if account == "" {
		return &Error{Status: http.StatusForbidden, Code: CodeDenied, Message: "the identity provider gave no " + si.cfg.Claim() + " claim for this account",
			Err: fmt.Errorf("oidc_auth: subject %s: no string claim %q", idt.Subject, si.cfg.Claim())}
	}
	labels := claimLabels(claims, si.cfg.Labels())
	cred, _, err := si.creds.Mint(token.SignInClaims{Account: account, Provider: si.backend, Subject: idt.Subject,
		Labels: labels, RefreshToken: tok.RefreshToken}, si.cfg.TTL())
	if err != nil {
		return &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error", Err: err}
	}
	s.logger.Info(si.backend+" sign-in", "account", account, "subject", idt.Subject, "refresh_token", tok.RefreshToken != "")
	renderSignIn(w, signInView{account: account, labels: labels, credential: cred, registry: si.cfg.RegistryURL,
		expires: si.now().Add(si.cfg.TTL()), again: path})
	return nil
}

// signInView is what the sign-in page shows.
type signInView struct {
	account, credential, registry, again string
	labels                               map[string][]string
	expires                              time.Time
}

// renderSignIn writes the page with the credential and the docker login
// line, with headers that keep it out of frames, caches and referrers.
func renderSignIn(w http.ResponseWriter, v signInView) {
	registry := v.registry
	if registry == "" {
		registry = "REGISTRY"
	}
	var names []string
	for k := range v.labels {
		names = append(names, k)
	}
	sort.Strings(names)
	type label struct{ Name, Values string }
	var ls []label
	for _, k := range names {
		ls = append(ls, label{k, strings.Join(v.labels[k], ", ")})
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("X-Frame-Options", "DENY")
	_ = signInPage.Execute(w, map[string]any{
		"Account": v.account, "Labels": ls, "Credential": v.credential, "Registry": registry,
		"Expires": v.expires.UTC().Format(time.RFC1123),
		"Again":   v.again,
	})
}

// claimLabels maps each named claim (a string or a list of strings) to a
// label of the same name.
func claimLabels(claims map[string]any, names []string) map[string][]string {
	out := map[string][]string{}
	for _, n := range names {
		switch v := claims[n].(type) {
		case string:
			out[n] = []string{v}
		case []any:
			for _, x := range v {
				if s, ok := x.(string); ok {
					out[n] = append(out[n], s)
				}
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// redirectURL is redirect_url or, when it is not set (google_auth,
// docker_auth has no such key), this request's own URL at path: https
// unless the request came in plain HTTP with no X-Forwarded-Proto: https.
// The provider only accepts callback URLs registered with it.
func (s *signIn) redirectURL(r *http.Request, path string) string {
	if s.cfg.RedirectURL != "" {
		return s.cfg.RedirectURL
	}
	scheme := "https"
	if r.TLS == nil && r.Header.Get("X-Forwarded-Proto") != "https" {
		scheme = "http"
	}
	return (&url.URL{Scheme: scheme, Host: r.Host, Path: path}).String()
}

// serveRoot redirects {prefix}/ to the configured browser flow, in
// docker_auth's order (google_auth, github_auth, oidc_auth, gitlab_auth).
func serveRoot(w http.ResponseWriter, r *http.Request, st *state) {
	var flow string
	switch {
	case st.google != nil:
		flow = "/google_auth"
	case st.github != nil:
		flow = "/github_auth"
	case st.signin != nil:
		flow = "/oidc_auth"
	default:
		flow = "/gitlab_auth"
	}
	http.Redirect(w, r, (&url.URL{Path: st.prefix + flow}).String(), http.StatusFound)
}
