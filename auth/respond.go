package auth

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/token"
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

// tokenResponse is the body of a successful answer. GET answers carry token
// and access_token (clients read one or the other); OAuth2 answers add the
// granted scope.
type tokenResponse struct {
	Token        string `json:"token"`
	AccessToken  string `json:"access_token"`
	ExpiresIn    int64  `json:"expires_in"`
	IssuedAt     string `json:"issued_at"`
	Scope        string `json:"scope,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
}

// respond signs the access token and, when offline access was asked for by
// a signed-in account, a refresh token. A request that came with a refresh
// token gets the same one back: Docker never stores a new one.
func (st *state) respond(ctx context.Context, req *Request, id *identity, access []token.Access) (tokenResponse, error) {
	tok, err := st.signer.IssueContext(ctx, id.Account, req.Service, access)
	if err != nil {
		return tokenResponse{}, err
	}
	resp := tokenResponse{
		Token:       tok.Raw,
		AccessToken: tok.Raw,
		ExpiresIn:   int64(tok.ExpiresAt.Sub(tok.IssuedAt) / time.Second),
		IssuedAt:    tok.IssuedAt.UTC().Format(time.RFC3339),
	}
	if req.OAuth2 {
		resp.Scope = grantedScope(access)
	}
	if req.Offline && st.refresh != nil && id.Account != "" && !id.noRefresh {
		if req.Grant == GrantRefresh {
			resp.RefreshToken = req.RefreshToken
		} else if resp.RefreshToken, err = st.refresh.IssueFrom(id.Account, req.Service, id.Backend, id.Credential, id.from); err != nil {
			return tokenResponse{}, err
		}
	}
	return resp, nil
}

// grantedScope renders what was granted as an OAuth2 scope value:
// space-separated scopes, those with no action left out.
func grantedScope(access []token.Access) string {
	var parts []string
	for _, a := range access {
		if len(a.Actions) > 0 {
			parts = append(parts, a.Type+":"+a.Name+":"+strings.Join(a.Actions, ","))
		}
	}
	return strings.Join(parts, " ")
}

func writeJSON(w http.ResponseWriter, resp *tokenResponse) {
	buf := bodyPool.Get().(*[]byte)
	defer putBody(buf)
	if n := len(resp.Token) + len(resp.AccessToken) + len(resp.Scope) + len(resp.RefreshToken) + 128; cap(*buf) < n {
		*buf = make([]byte, 0, n) // one allocation for a large token, not a doubling series
	}
	body, ok := appendTokenResponse((*buf)[:0], resp)
	if !ok {
		body, _ = json.Marshal(resp)
	}
	*buf = body
	h := w.Header()
	h["Content-Type"] = headerJSON // canonical keys, shared read-only values: no per-request allocation
	h["Cache-Control"] = headerNoStore
	h["Content-Length"] = contentLength(len(body))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}
