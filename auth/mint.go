package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gatehouse/gatehouse/authn"
	"github.com/gatehouse/gatehouse/token"
)

// Self-service minting (docs/access-tokens.md): POST
// {path_prefix}/access_tokens, authenticated with the user's own
// credentials (Basic with the password, or Basic ":<refresh token>" with
// "service" in the body), mints an access token for that user within the
// lifetime policy. A token cannot mint a token: an access token as the
// password, or a refresh token issued to an access-token login, is
// refused. The requested scope patterns are stored as requested; at every
// use the token grants only their intersection with what the owner's ACL
// grants then (narrowByToken), so a token never grants its owner more
// than the owner has. The request is throttled like a login
// (Server.authenticate), and a tokens-only account may mint with its
// password: that is how it gets a token.

// Limits of a minting request.
const (
	maxMintBody      = 16 << 10
	maxTokenNameLen  = 128
	maxMintedScopes  = MaxScopes
	msgTokenNotMinty = "an access token cannot mint an access token: authenticate with your password (or a refresh token of a password login)"
)

// mintBody is the JSON a minting request carries.
type mintBody struct {
	Name     string   `json:"name"`
	Scopes   []string `json:"scopes"`
	TTL      string   `json:"ttl"`       // "30d", "12h"; "" for access_tokens.default_ttl
	NoExpiry bool     `json:"no_expiry"` // only with allow_no_expiry
	Service  string   `json:"service"`   // the service a refresh token was issued for
}

// mintAnswer is the JSON of a minted token: shown once.
type mintAnswer struct {
	Token     string   `json:"token"`
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	Owner     string   `json:"owner"`
	Scopes    []string `json:"scopes"`
	IssuedAt  string   `json:"issued_at"`
	ExpiresAt string   `json:"expires_at,omitempty"`
}

// serveMint answers POST {path_prefix}/access_tokens.
func (s *Server) serveMint(w http.ResponseWriter, r *http.Request, st *state) {
	start := s.now()
	req, body, e := st.parseMint(w, r)
	if e != nil {
		s.fail(w, r, req, e, start)
		return
	}
	ctx := withLazyDeadline(r.Context(), time.Now().Add(RequestTimeout))
	defer ctx.stop()
	raw, c, e := s.mintFor(ctx, st, req, body)
	if e != nil {
		s.fail(w, r, req, e, start)
		return
	}
	a := mintAnswer{Token: raw, ID: c.ID, Name: c.Name, Owner: c.Owner, Scopes: c.Scopes,
		IssuedAt: c.IssuedAt.UTC().Format(time.RFC3339)}
	if !c.ExpiresAt.IsZero() {
		a.ExpiresAt = c.ExpiresAt.UTC().Format(time.RFC3339)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(&a)
	s.logger.LogAttrs(r.Context(), slog.LevelInfo, "access token minted", slog.String("account", c.Owner),
		slog.String("authenticator", c.Authenticator), slog.String("token_name", c.Name), slog.String("token_id", c.ID),
		slog.String("scopes", strings.Join(c.Scopes, " ")), slog.String("expires", expiryString(c)),
		slog.String("client_ip", ipString(req.IP)))
}

// parseMint reads a minting request: POST, a JSON body within
// maxMintBody, Basic credentials. Every problem is a 4xx *Error.
func (st *state) parseMint(w http.ResponseWriter, r *http.Request) (*Request, *mintBody, *Error) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		return nil, nil, &Error{Status: http.StatusMethodNotAllowed, Code: CodeUnsupported, Message: "method not allowed: POST a JSON body"}
	}
	if headerLength(r) > MaxHeaderLength {
		return nil, nil, &Error{Status: http.StatusBadRequest, Code: CodeTooLarge, Message: "request headers too large"}
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, nil, &Error{Status: http.StatusUnsupportedMediaType, Code: CodeUnsupported, Message: "want Content-Type: application/json"}
	}
	ip, e := clientIP(r, st.ipc)
	if e != nil {
		return nil, nil, e
	}
	req := &Request{Grant: GrantPassword, IP: ip, mint: true}
	if e := req.parseCredentials(r.Header.Values("Authorization")); e != nil {
		return req, nil, e
	}
	var body mintBody
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxMintBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return req, nil, &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeTooLarge, Message: fmt.Sprintf("body larger than %d bytes", maxMintBody)}
		}
		return req, nil, badRequest("malformed JSON body: %s", truncate(err.Error()))
	}
	if dec.More() {
		return req, nil, badRequest("malformed JSON body: more than one value")
	}
	if e := body.check(); e != nil {
		return req, nil, e
	}
	if req.Account == "" && req.Password != "" {
		// A refresh token as the password of an empty user, as on GET.
		req.Grant, req.RefreshToken, req.Password, req.Service = GrantRefresh, req.Password, "", body.Service
	}
	return req, &body, nil
}

// check validates the body's fields (the scope patterns are checked by
// the minter).
func (b *mintBody) check() *Error {
	switch {
	case b.Name == "" || len(b.Name) > maxTokenNameLen || !utf8.ValidString(b.Name) || !plainAccount(b.Name):
		return badRequest("name: want a name of 1 to %d printable characters", maxTokenNameLen)
	case len(b.Scopes) == 0 || len(b.Scopes) > maxMintedScopes:
		return badRequest("scopes: want 1 to %d patterns such as repository:web/*:pull,push", maxMintedScopes)
	case b.TTL != "" && b.NoExpiry:
		return badRequest("ttl and no_expiry exclude each other")
	}
	return nil
}

// mintFor authenticates req (throttled like a login) and mints the token
// body asks for, for the authenticated account.
func (s *Server) mintFor(ctx context.Context, st *state, req *Request, body *mintBody) (string, *token.AccessTokenClaims, *Error) {
	if st.tokens == nil {
		return "", nil, &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: "access tokens are not enabled"}
	}
	if !req.HasCredentials {
		return "", nil, st.chain.unauthorized(msgNoCredentials, errors.New("minting an access token: no credentials"))
	}
	if st.isGatehouseToken(req) {
		return "", nil, denied(msgTokenNotMinty, errors.New("minting an access token: the password is a gatehouse token"))
	}
	id, e := s.authenticate(ctx, st, req)
	if e != nil {
		return "", nil, e
	}
	switch {
	case id.from != nil:
		return "", nil, denied(msgTokenNotMinty, fmt.Errorf("minting an access token: a refresh token of access token %s", id.from.ID))
	case id.noRefresh:
		return "", nil, denied("this account cannot own access tokens: its authenticator cannot look it up again",
			fmt.Errorf("minting an access token: %s accounts cannot be looked up", id.Backend))
	}
	r := MintRequest{Name: body.Name, Scopes: body.Scopes, NoExpiry: body.NoExpiry}
	if body.TTL != "" {
		d, err := token.ParseTTL(body.TTL)
		if err != nil || d <= 0 {
			return "", nil, badRequest("ttl: want a positive lifetime such as 30d or 12h, got %q", truncate(body.TTL))
		}
		r.TTL = d
	}
	raw, c, err := st.mint(authn.Account{Name: id.Account, Labels: id.Labels}, id.Backend, r, s.now())
	if err != nil {
		return "", nil, badRequest("%s", strings.TrimPrefix(strings.TrimPrefix(err.Error(), "auth: "), "token: "))
	}
	req.tokenName, req.tokenID = c.Name, c.ID
	return raw, c, nil
}

// denied is a 403: the credentials were understood, the request is not
// allowed.
func denied(message string, reason error) *Error {
	return &Error{Status: http.StatusForbidden, Code: CodeDenied, Message: message, Err: reason}
}

func expiryString(c *token.AccessTokenClaims) string {
	if c.ExpiresAt.IsZero() {
		return "never"
	}
	return c.ExpiresAt.UTC().Format(time.RFC3339)
}
