package auth

import (
	"strconv"
	"sync"
	"sync/atomic"
)

// appendTokenResponse appends resp as JSON, byte for byte what
// json.Marshal(resp) produces, without reflection. Token (and AccessToken
// when it is the same string) is a compact JWS from token.Signer, base64url
// and dots, and IssuedAt an RFC 3339 time: neither needs escaping, so
// neither is scanned (a 2 KB token is most of the body). It reports false,
// and appends nothing, when another string field would need escaping: the
// caller then uses encoding/json.
func appendTokenResponse(dst []byte, resp *tokenResponse) ([]byte, bool) {
	if (resp.AccessToken != resp.Token && !jsonPlain(resp.AccessToken)) || !jsonPlain(resp.Scope) || !jsonPlain(resp.RefreshToken) {
		return dst, false
	}
	dst = append(dst, `{"token":"`...)
	dst = append(dst, resp.Token...)
	dst = append(dst, `","access_token":"`...)
	dst = append(dst, resp.AccessToken...)
	dst = append(dst, `","expires_in":`...)
	dst = strconv.AppendInt(dst, resp.ExpiresIn, 10)
	dst = append(dst, `,"issued_at":"`...)
	dst = append(dst, resp.IssuedAt...)
	dst = append(dst, '"')
	if resp.Scope != "" {
		dst = append(dst, `,"scope":"`...)
		dst = append(dst, resp.Scope...)
		dst = append(dst, '"')
	}
	if resp.RefreshToken != "" {
		dst = append(dst, `,"refresh_token":"`...)
		dst = append(dst, resp.RefreshToken...)
		dst = append(dst, '"')
	}
	return append(dst, '}'), true
}

// jsonPlain reports whether encoding/json writes s as a string unchanged:
// printable ASCII without '"', '\\' and the HTML characters it escapes.
func jsonPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		if !plainByte[s[i]] {
			return false
		}
	}
	return true
}

var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// bodyPool holds response buffers: a token response is a few kilobytes,
// copied into the connection's buffer by Write.
var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// maxPooledBody is the largest buffer kept for reuse.
const maxPooledBody = 64 << 10

func putBody(b *[]byte) {
	if cap(*b) <= maxPooledBody {
		bodyPool.Put(b)
	}
}

// contentLengths caches Content-Length header values by length: token
// responses of one deployment come in a handful of lengths, each of which
// then costs no allocation. The values are shared and read-only, like
// headerJSON; a slot holds the last length that hashed to it.
var contentLengths [64]atomic.Pointer[contentLengthValue]

type contentLengthValue struct {
	n      int
	header []string
}

// contentLength is the Content-Length header value for n bytes.
func contentLength(n int) []string {
	slot := &contentLengths[n%len(contentLengths)]
	if v := slot.Load(); v != nil && v.n == n {
		return v.header
	}
	v := &contentLengthValue{n: n, header: []string{strconv.Itoa(n)}} // len = cap: an append gets a new array
	slot.Store(v)
	return v.header
}

// Header values of every token response. net/http only reads them; a
// handler that appended to one would get a new array (length = capacity).
var (
	headerJSON    = []string{"application/json"}
	headerNoStore = []string{"no-store"}
)
