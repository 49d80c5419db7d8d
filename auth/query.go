package auth

import (
	"errors"
	"io"
	"net/http"
	"strings"
)

// The query parameters of a GET token request that Gatehouse reads.
const (
	qService = iota
	qClientID
	qAccount
	qOfflineToken
)

var queryParamNames = []string{"service", "client_id", "account", "offline_token"}

// The fields of an OAuth2 POST that Gatehouse reads.
const (
	fGrantType = iota
	fService
	fClientID
	fAccessType
	fUsername
	fPassword
	fRefreshToken
)

var formFieldNames = []string{"grant_type", "service", "client_id", "access_type", "username", "password", "refresh_token"}

// maxParams is the most parameters, scope aside, a query can keep.
const maxParams = 8

// query is a parsed GET query string or POST form: the first value of each
// parameter Gatehouse reads, and every scope value in order.
type query struct {
	values [maxParams]string
	set    [maxParams]bool
	scopes []string
}

func (q *query) get(p int) string { return q.values[p] }

// has reports whether parameter p was present, even empty.
func (q *query) has(p int) bool { return q.set[p] }

// parseQuery parses a query string or form body as url.ParseQuery does,
// with the same errors (a semicolon, a malformed escape in any key or
// value), keeping only the parameters named in names (at most maxParams)
// and scope, without building a map. The work is linear in len(raw).
func parseQuery(raw string, names []string) (q query, err error) {
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if strings.Contains(pair, ";") {
			return q, errors.New("invalid semicolon separator in query")
		}
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		if k, err = queryUnescape(k); err != nil {
			return q, err
		}
		if v, err = queryUnescape(v); err != nil {
			return q, err
		}
		if k == "scope" {
			q.scopes = append(q.scopes, v)
			continue
		}
		for i, name := range names {
			if k == name && !q.set[i] {
				q.values[i], q.set[i] = v, true
			}
		}
	}
	return q, nil
}

// errEscape is the error of a malformed %-escape.
var errEscape = errors.New("invalid URL escape")

// queryUnescape is url.QueryUnescape, without a copy when there is
// nothing to unescape, and copying the runs between escapes whole rather
// than byte by byte.
func queryUnescape(s string) (string, error) {
	if !strings.ContainsAny(s, "%+") {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	start := 0
	for i := 0; i < len(s); {
		switch s[i] {
		case '+':
			b.WriteString(s[start:i])
			b.WriteByte(' ')
			i++
		case '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return "", errEscape
			}
			b.WriteString(s[start:i])
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 3
		default:
			i++
			continue
		}
		start = i
	}
	b.WriteString(s[start:])
	return b.String(), nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// readForm reads and parses the form body of a POST, at most MaxFormBytes.
// It does what r.ParseForm does for the body, in one pass that copies the
// body once and builds no map; the query string of a POST is ignored.
func readForm(w http.ResponseWriter, r *http.Request) (query, *Error) {
	body, err := readBody(http.MaxBytesReader(w, r.Body, MaxFormBytes), r.ContentLength)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return query{}, &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeTooLarge, Message: "request body too large"}
		}
		return query{}, badRequest("malformed form body")
	}
	f, err := parseQuery(string(body), formFieldNames)
	if err != nil {
		return query{}, badRequest("malformed form body")
	}
	return f, nil
}

// readBody reads all of body into one buffer, sized for contentLength
// when that is known and within MaxFormBytes: io.ReadAll would grow its
// buffer, with a copy, about ten times for a body of MaxFormBytes.
func readBody(body io.Reader, contentLength int64) ([]byte, error) {
	if contentLength < 0 || contentLength > MaxFormBytes {
		return io.ReadAll(body)
	}
	buf := make([]byte, contentLength+1) // +1: a longer body is read, for the limit to refuse
	n, err := io.ReadFull(body, buf)
	switch {
	case err == io.ErrUnexpectedEOF || err == io.EOF:
		return buf[:n], nil
	case err != nil:
		return nil, err
	}
	rest, err := io.ReadAll(body) // more than announced
	return append(buf, rest...), err
}
