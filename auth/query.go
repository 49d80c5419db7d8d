package auth

import (
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
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

// maxFields is the most parameters, scope aside, a query can keep.
const maxFields = 8

// Limits on what parseQuery reads, so that a form body (MaxFormBytes) costs
// no more than a GET query (MaxQueryLength) of the same scopes plus a read
// of the rest.
const (
	// MaxQueryParams bounds the parameters of a query or form, empty ones
	// included (net/url stops at 10,000).
	MaxQueryParams = 1024
	// MaxScopeText bounds the scope values of one request, as sent
	// (escaped): what fits in a GET query.
	MaxScopeText = MaxQueryLength
)

// Errors of parseQuery past its limits.
var (
	errTooManyParams = errors.New("too many parameters")
	errScopeTooLong  = errors.New("scope parameters too long")
)

// query is a parsed GET query string or POST form: the first value of each
// parameter Gatehouse reads, and every scope value in order.
type query struct {
	values [maxFields]string
	set    [maxFields]bool
	scopes []string
}

func (q *query) get(p int) string { return q.values[p] }

// has reports whether parameter p was present, even empty.
func (q *query) has(p int) bool { return q.set[p] }

// parseQuery parses a query string or form body as url.ParseQuery does,
// with the same errors (a semicolon, a malformed escape in any key or
// value), keeping only the parameters named in names (at most maxFields)
// and scope, without building a map. Past MaxQueryParams parameters or
// MaxScopeText bytes of scope values it fails with errTooManyParams or
// errScopeTooLong. The work is linear in len(raw), and values of other
// parameters are checked, not decoded.
func parseQuery(raw string, names []string) (q query, err error) {
	params, scopeText := 0, 0
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if strings.Contains(pair, ";") {
			return q, errors.New("invalid semicolon separator in query")
		}
		if params++; params > MaxQueryParams {
			return q, errTooManyParams
		}
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		if k, err = queryUnescape(k); err != nil {
			return q, err
		}
		i := slices.Index(names, k)
		switch {
		case k == "scope":
			if scopeText += len(v); scopeText > MaxScopeText {
				return q, errScopeTooLong
			}
		case i < 0 || q.set[i]:
			if !validEscapes(v) {
				return q, errEscape
			}
			continue
		}
		if v, err = queryUnescape(v); err != nil {
			return q, err
		}
		if k == "scope" {
			q.scopes = append(q.scopes, v)
		} else {
			q.values[i], q.set[i] = v, true
		}
	}
	return q, nil
}

// validEscapes reports whether every '%' in s starts a valid escape.
func validEscapes(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '%' {
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return false
			}
			i += 2
		}
	}
	return true
}

// errEscape is the error of a malformed %-escape.
var errEscape = errors.New("invalid URL escape")

// queryUnescape is url.QueryUnescape, without a copy when there is
// nothing to unescape, and finding the escapes with strings.IndexByte
// rather than looking at every byte.
func queryUnescape(s string) (string, error) {
	pct, plus := indexFrom(s, '%', 0), indexFrom(s, '+', 0)
	if pct == len(s) && plus == len(s) {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	start := 0
	for {
		i := min(pct, plus)
		b.WriteString(s[start:i])
		if i == len(s) {
			return b.String(), nil
		}
		if i == plus {
			b.WriteByte(' ')
			start = i + 1
			plus = indexFrom(s, '+', start)
			continue
		}
		if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			return "", errEscape
		}
		b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
		start = i + 3
		pct = indexFrom(s, '%', start)
		if plus < start {
			plus = indexFrom(s, '+', start)
		}
	}
}

// indexFrom is the index of the first c in s at or after from, or len(s).
func indexFrom(s string, c byte, from int) int {
	if i := strings.IndexByte(s[from:], c); i >= 0 {
		return from + i
	}
	return len(s)
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
	f, err := parseQuery(body, formFieldNames)
	if err != nil {
		return query{}, queryError(err, "malformed form body")
	}
	return f, nil
}

// readBody reads all of body into a string, in one allocation sized for
// contentLength when that is known and within MaxFormBytes (io.ReadAll
// would grow its buffer about ten times for a body of MaxFormBytes, and
// the string would be one more copy), through a pooled chunk buffer.
func readBody(body io.Reader, contentLength int64) (string, error) {
	var b strings.Builder
	if contentLength >= 0 && contentLength <= MaxFormBytes {
		b.Grow(int(contentLength))
	}
	chunk := chunkPool.Get().(*[4 << 10]byte)
	defer chunkPool.Put(chunk)
	_, err := io.CopyBuffer(&b, body, chunk[:]) // neither side has WriteTo or ReadFrom: chunk is used
	return b.String(), err
}

var chunkPool = sync.Pool{New: func() any { return new([4 << 10]byte) }}

// queryError is the answer to an error of parseQuery: 400, with code
// TOO_LARGE past a limit, else BAD_REQUEST with message malformed.
func queryError(err error, malformed string) *Error {
	if errors.Is(err, errTooManyParams) || errors.Is(err, errScopeTooLong) {
		return &Error{Status: http.StatusBadRequest, Code: CodeTooLarge, Message: err.Error()}
	}
	return badRequest("%s", malformed)
}
