package auth

import (
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// MaxQueryLength bounds the query string of a token request.
const MaxQueryLength = 16 << 10

// Request is a parsed token request.
type Request struct {
	// Account and Password come from the Basic Authorization header.
	Account  string
	Password string
	// HasCredentials is false for an anonymous request: no Authorization
	// header, or Basic with an empty user and an empty password.
	HasCredentials bool
	Service        string
	Scopes         []Scope
	ClientID       string
	Offline        bool
	IP             netip.Addr
}

// clientIPConfig says where the client address comes from.
type clientIPConfig struct {
	header string // real_ip_header; "" means the connection's peer address
	pos    int    // real_ip_pos
}

// parseRequest reads a GET token request. Every problem is a 400 *Error.
func parseRequest(r *http.Request, ipc clientIPConfig) (*Request, *Error) {
	if len(r.URL.RawQuery) > MaxQueryLength {
		return nil, &Error{Status: http.StatusRequestURITooLong, Code: CodeTooLarge, Message: "query string too long"}
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, badRequest("malformed query string")
	}
	req := &Request{Service: q.Get("service"), ClientID: q.Get("client_id")}
	if e := req.parseCredentials(r.Header.Values("Authorization")); e != nil {
		return nil, e
	}
	if account := q.Get("account"); account != "" && req.HasCredentials && account != req.Account {
		return nil, badRequest("account %q does not match the authenticated user", truncate(account))
	}
	if req.Service == "" {
		return nil, badRequest("service parameter is required")
	}
	if v := q.Get("offline_token"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, badRequest("offline_token must be true or false")
		}
		req.Offline = b
	}
	if req.Scopes, err = ParseScopes(q["scope"]); err != nil {
		return nil, badRequest("%v", err)
	}
	ip, e := clientIP(r, ipc)
	if e != nil {
		return nil, e
	}
	req.IP = ip
	return req, nil
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
	return nil
}

// parseBasic decodes "Basic base64(user:password)". Unlike net/http's
// BasicAuth it rejects a user containing control characters.
func parseBasic(h string) (user, pass string, ok bool) {
	scheme, enc, found := strings.Cut(h, " ")
	if !found || !strings.EqualFold(scheme, "Basic") {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(enc))
	if err != nil {
		return "", "", false
	}
	user, pass, ok = strings.Cut(string(raw), ":")
	if !ok {
		return "", "", false
	}
	for i := 0; i < len(user); i++ {
		if user[i] < 0x20 || user[i] == 0x7f {
			return "", "", false
		}
	}
	return user, pass, true
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
