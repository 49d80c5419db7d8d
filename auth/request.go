package auth

import (
	"encoding/base64"
	"errors"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Size limits of a token request. The HTTP server's own header limit is
// higher, so that an oversized request is refused here, with an errcode
// body, rather than by net/http with plain text.
const (
	MaxQueryLength  = 16 << 10
	MaxHeaderLength = 32 << 10
)

// headerLength is the size of r's header block, roughly as sent.
func headerLength(r *http.Request) int {
	n := 0
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// Grant types: how a request proves who it is.
const (
	GrantPassword = "password"      // credentials (Basic, or the POST form), or none: anonymous
	GrantRefresh  = "refresh_token" // a refresh token from an earlier response
)

// Request is a parsed token request, GET or OAuth2 POST.
type Request struct {
	// Grant is GrantPassword or GrantRefresh.
	Grant string
	// Account and Password come from the Basic Authorization header (GET)
	// or the username and password fields (POST).
	Account  string
	Password string
	// HasCredentials is false for an anonymous request: no Authorization
	// header, or Basic with an empty user and an empty password.
	HasCredentials bool
	// RefreshToken is set for GrantRefresh.
	RefreshToken string
	Service      string
	Scopes       []Scope
	ClientID     string
	// Offline asks for a refresh token (offline_token=true on GET,
	// access_type=offline on POST).
	Offline bool
	// OAuth2 is true for a POST: the response then carries scope, and
	// never an anonymous token.
	OAuth2 bool
	IP     netip.Addr

	// malformedAccount is set when Account has white space at an end or a
	// control or format character: it is refused, and counted as a failed
	// login, before any lookup (see plainAccount).
	malformedAccount bool
	// credKind is GrantAccessToken once the password was taken for an
	// access token; tokenName and tokenID name the access token (or the
	// one a refresh token was issued to) once it verified: metrics and
	// the audit line carry them.
	credKind           string
	tokenName, tokenID string
	// mint is set for a self-service minting request (mint.go): there a
	// tokens-only account's password is accepted, and a token refused.
	mint bool
	// attempt is the request's way through the throttle while it is
	// authenticated (Server.authenticate).
	attempt attempt
}

// clientIPConfig says where the client address comes from.
type clientIPConfig struct {
	header string // real_ip_header; "" means the connection's peer address
	pos    int    // real_ip_pos
}

// parse reads a token request: an OAuth2 form (POST) or a query (GET).
func (st *state) parse(w http.ResponseWriter, r *http.Request) (*Request, *Error) {
	if r.Method == http.MethodPost {
		return parsePost(w, r, st.ipc)
	}
	return parseRequest(r, st.ipc, st.refresh != nil)
}

// parseRequest reads a GET token request. With refresh set, a Basic
// password without a user is taken as a refresh token. Every problem is a
// 4xx *Error.
func parseRequest(r *http.Request, ipc clientIPConfig, refresh bool) (*Request, *Error) {
	if headerLength(r) > MaxHeaderLength {
		return nil, &Error{Status: http.StatusBadRequest, Code: CodeTooLarge, Message: "request headers too large"}
	}
	if len(r.URL.RawQuery) > MaxQueryLength {
		return nil, &Error{Status: http.StatusBadRequest, Code: CodeTooLarge, Message: "query string too long"}
	}
	q, err := parseQuery(r.URL.RawQuery, queryParamNames)
	if err != nil {
		return nil, queryError(err, "malformed query string")
	}
	req := &Request{Grant: GrantPassword, Service: q.get(qService), ClientID: q.get(qClientID)}
	if e := req.parseCredentials(r.Header.Values("Authorization")); e != nil {
		return nil, e
	}
	if refresh && req.Account == "" && req.Password != "" {
		// containerd and BuildKit retry a refused POST as GET with the
		// refresh token as the Basic password and no user.
		req.Grant, req.RefreshToken, req.Password = GrantRefresh, req.Password, ""
	}
	if account := q.get(qAccount); account != "" && req.HasCredentials && account != req.Account {
		return nil, badRequest("account %q does not match the authenticated user", truncate(account))
	}
	if req.Service == "" {
		return nil, badRequest("service parameter is required")
	}
	if v := q.get(qOfflineToken); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, badRequest("offline_token must be true or false")
		}
		req.Offline = b
	}
	return req.finish(r, q.scopes, ipc)
}

// finish parses the scopes and finds the client address.
func (req *Request) finish(r *http.Request, scopes []string, ipc clientIPConfig) (*Request, *Error) {
	var err error
	if req.Scopes, err = ParseScopes(scopes); err != nil {
		return nil, badRequest("%v", err)
	}
	ip, e := clientIP(r, ipc)
	if e != nil {
		return nil, e
	}
	req.IP = ip
	return req, nil
}

// MaxFormBytes bounds the body of an OAuth2 POST.
const MaxFormBytes = 64 << 10

// parsePost reads an OAuth2 token request: a form-encoded POST with
// grant_type password (username, password) or refresh_token
// (refresh_token), service, client_id, access_type and scope (repeated or
// space-separated). Every problem is a 4xx *Error.
func parsePost(w http.ResponseWriter, r *http.Request, ipc clientIPConfig) (*Request, *Error) {
	if headerLength(r) > MaxHeaderLength {
		return nil, &Error{Status: http.StatusBadRequest, Code: CodeTooLarge, Message: "request headers too large"}
	}
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || ct != "application/x-www-form-urlencoded" {
		return nil, badRequest("want Content-Type application/x-www-form-urlencoded")
	}
	f, e := readForm(w, r)
	if e != nil {
		return nil, e
	}
	req := &Request{OAuth2: true, Grant: f.get(fGrantType), Service: f.get(fService), ClientID: f.get(fClientID)}
	for _, field := range []int{fGrantType, fService, fClientID} {
		if f.get(field) == "" {
			return nil, badRequest("missing required field %s", formFieldNames[field])
		}
	}
	switch f.get(fAccessType) {
	case "", "online":
	case "offline":
		req.Offline = true
	default:
		return nil, badRequest("access_type must be online or offline")
	}
	switch req.Grant {
	case GrantPassword:
		if f.get(fUsername) == "" || !f.has(fPassword) {
			return nil, badRequest("grant_type password needs username and password")
		}
		req.Account, req.Password, req.HasCredentials = f.get(fUsername), f.get(fPassword), true
		req.malformedAccount = !plainAccount(req.Account)
	case GrantRefresh:
		if f.get(fRefreshToken) == "" {
			return nil, badRequest("missing required field refresh_token")
		}
		req.RefreshToken, req.HasCredentials = f.get(fRefreshToken), true
	default:
		return nil, badRequest("unsupported grant_type %q: want password or refresh_token", truncate(req.Grant))
	}
	return req.finish(r, f.scopes, ipc)
}

// parseCredentials reads the Basic Authorization header, if any.
func (req *Request) parseCredentials(values []string) *Error {
	switch len(values) {
	case 0:
		return nil
	case 1:
	default:
		return badRequest("more than one Authorization header")
	}
	user, pass, ok := parseBasic(values[0])
	if !ok {
		return badRequest("malformed Authorization header: want Basic credentials")
	}
	req.Account, req.Password = user, pass
	req.HasCredentials = user != "" || pass != ""
	req.malformedAccount = !plainAccount(user)
	return nil
}

// plainAccount reports whether an account name may be looked up: no white
// space at either end and no control or format character (Unicode Cc, Cf)
// anywhere. Other names are refused with the answer to a wrong password:
// directories that ignore such characters (LDAP matching drops surrounding
// spaces and zero-width ones) would take them for the account they
// decorate, and each spelling would have a failure budget of its own.
func plainAccount(name string) bool {
	if name == "" {
		return true
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= utf8.RuneSelf {
			return plainUnicodeAccount(name)
		}
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return name[0] != ' ' && name[len(name)-1] != ' '
}

func plainUnicodeAccount(name string) bool {
	first, _ := utf8.DecodeRuneInString(name)
	last, _ := utf8.DecodeLastRuneInString(name)
	if unicode.IsSpace(first) || unicode.IsSpace(last) {
		return false
	}
	for _, r := range name {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return false
		}
	}
	return true
}

// parseBasic decodes "Basic base64(user:password)". A user with control
// characters is taken as sent, and refused later as a wrong credential
// (plainAccount).
func parseBasic(h string) (user, pass string, ok bool) {
	scheme, enc, found := strings.Cut(h, " ")
	if !found || !strings.EqualFold(scheme, "Basic") {
		return "", "", false
	}
	enc = strings.TrimSpace(enc)
	var stack [128]byte // decoded in place for usual credentials, then one string
	raw := stack[:0]
	if n := base64.StdEncoding.DecodedLen(len(enc)); n > len(stack) {
		raw = make([]byte, 0, n)
	}
	raw, err := base64.StdEncoding.AppendDecode(raw, []byte(enc))
	if err != nil {
		return "", "", false
	}
	return strings.Cut(string(raw), ":")
}

// clientIP finds the client address: from the configured header (entry pos,
// negative counting from the end), else from the connection.
func clientIP(r *http.Request, c clientIPConfig) (netip.Addr, *Error) {
	if c.header == "" {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		ip, err := netip.ParseAddr(host)
		if err != nil {
			return netip.Addr{}, nil // unix socket or a test transport: no address
		}
		return ip.Unmap(), nil
	}
	values := r.Header.Values(c.header)
	if len(values) == 0 {
		return netip.Addr{}, badRequest("missing %s header", c.header)
	}
	var parts []string
	for _, v := range values {
		for p := range strings.SplitSeq(v, ",") {
			parts = append(parts, strings.TrimSpace(p))
		}
	}
	i := c.pos
	if i < 0 {
		i += len(parts)
	}
	if i < 0 || i >= len(parts) {
		return netip.Addr{}, badRequest("%s header has no entry at position %d", c.header, c.pos)
	}
	ip, err := netip.ParseAddr(parts[i])
	if err != nil {
		return netip.Addr{}, badRequest("%s header: entry %d is not an IP address", c.header, c.pos)
	}
	return ip.Unmap(), nil
}

var errNoCredentials = errors.New("no credentials and anonymous access is not configured")
