package harness

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// recorder keeps a one-line account of every exchange a server saw, so that
// a failing test can show what the client asked, with which credentials or
// token, and what came back.
type recorder struct {
	name string
	mu   sync.Mutex
	log  []string
}

func (r *recorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		cw := &capturingWriter{ResponseWriter: w, status: http.StatusOK}
		form := describeForm(req)
		h.ServeHTTP(cw, req)
		agent, _, _ := strings.Cut(req.UserAgent(), " ") // "go-containerregistry", "skopeo/1.9.3", "docker/20.10.24", …
		line := fmt.Sprintf("%s %s%s [%s] (%s) -> %d", req.Method, req.URL.RequestURI(), form,
			describeAuthorization(req.Header.Get("Authorization")), agent, cw.status)
		if c := cw.Header().Get("WWW-Authenticate"); c != "" && cw.status == http.StatusUnauthorized {
			line += " challenge: " + c
		}
		if d := describeBody(cw.status, cw.Header().Get("Content-Type"), cw.body.String()); d != "" {
			line += " " + d
		}
		r.mu.Lock()
		r.log = append(r.log, line)
		r.mu.Unlock()
	})
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.log) == 0 {
		return "(no requests)\n"
	}
	return strings.Join(r.log, "\n") + "\n"
}

// capturingWriter records the status and the first bodyLimit bytes of a
// response body.
type capturingWriter struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
	body        strings.Builder
}

const bodyLimit = 4096

func (w *capturingWriter) WriteHeader(status int) {
	if !w.wroteHeader {
		w.status, w.wroteHeader = status, true
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *capturingWriter) Write(p []byte) (int, error) {
	w.wroteHeader = true
	if room := bodyLimit - w.body.Len(); room > 0 {
		w.body.Write(p[:min(room, len(p))])
	}
	return w.ResponseWriter.Write(p)
}

func (w *capturingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// describeForm summarises the form of an OAuth2 token POST without its
// secrets (` form{grant_type=["password"] ... username=["alice"] password=(set)}`)
// and leaves the body readable for the handler; "" for other requests.
func describeForm(req *http.Request) string {
	if req.Method != http.MethodPost || !strings.HasPrefix(req.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		return ""
	}
	raw, err := io.ReadAll(io.LimitReader(req.Body, bodyLimit))
	req.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(raw), req.Body), req.Body}
	if err != nil {
		return " form{unreadable}"
	}
	f, err := url.ParseQuery(string(raw))
	if err != nil {
		return " form{malformed}"
	}
	var parts []string
	for _, k := range []string{"grant_type", "client_id", "service", "access_type", "username", "scope"} {
		if vs, ok := f[k]; ok {
			parts = append(parts, fmt.Sprintf("%s=%q", k, vs))
		}
	}
	for _, k := range []string{"password", "refresh_token"} {
		if f.Has(k) {
			parts = append(parts, k+"=(set)")
		}
	}
	return " form{" + strings.Join(parts, " ") + "}"
}

// describeAuthorization names the credentials of a request without the
// password: "basic alice", "bearer {decoded token}" or "none".
func describeAuthorization(h string) string {
	scheme, value, _ := strings.Cut(h, " ")
	switch strings.ToLower(scheme) {
	case "":
		return "no credentials"
	case "basic":
		raw, err := base64.StdEncoding.DecodeString(value)
		if err != nil {
			return "basic (undecodable)"
		}
		user, _, _ := strings.Cut(string(raw), ":")
		return fmt.Sprintf("basic user=%q", user)
	case "bearer":
		return "bearer " + DescribeToken(value)
	}
	return scheme + " ..."
}

// describeBody summarises a response body: token responses are decoded,
// error bodies are shown, successful registry bodies (blobs, manifests) are
// left out.
func describeBody(status int, contentType, body string) string {
	if status == http.StatusOK && strings.HasPrefix(contentType, "application/json") && strings.Contains(body, "token") {
		var tr struct {
			Token       string `json:"token"`
			AccessToken string `json:"access_token"`
			ExpiresIn   any    `json:"expires_in"`
			IssuedAt    any    `json:"issued_at"`
		}
		if json.Unmarshal([]byte(body), &tr) == nil && (tr.Token != "" || tr.AccessToken != "") {
			tok := tr.Token
			if tok == "" {
				tok = tr.AccessToken
			}
			return fmt.Sprintf("token response: expires_in=%v issued_at=%v token=%s",
				tr.ExpiresIn, tr.IssuedAt, DescribeToken(tok))
		}
	}
	if status >= 300 && body != "" {
		return "body: " + strings.TrimSpace(body)
	}
	return ""
}

// JWT is the decoded (not verified) header and claims of a token.
type JWT struct {
	Header struct {
		Alg string   `json:"alg"`
		Typ string   `json:"typ"`
		Kid string   `json:"kid"`
		X5C []string `json:"x5c"`
	}
	Claims struct {
		Iss    string          `json:"iss"`
		Sub    string          `json:"sub"`
		Aud    json.RawMessage `json:"aud"`
		Exp    json.Number     `json:"exp"`
		Access []struct {
			Type    string   `json:"type"`
			Name    string   `json:"name"`
			Actions []string `json:"actions"`
		} `json:"access"`
	}
}

// ParseJWT decodes a compact JWS without verifying it.
func ParseJWT(tok string) (*JWT, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("token has %d parts, want 3", len(parts))
	}
	var j JWT
	for i, dst := range []any{&j.Header, &j.Claims} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			return nil, fmt.Errorf("token part %d: %w", i, err)
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return nil, fmt.Errorf("token part %d: %w: %s", i, err, raw)
		}
	}
	return &j, nil
}

// DescribeToken is a one-line summary of a token's header and claims.
func DescribeToken(tok string) string {
	j, err := ParseJWT(tok)
	if err != nil {
		return fmt.Sprintf("{undecodable: %v}", err)
	}
	access := make([]string, 0, len(j.Claims.Access))
	for _, a := range j.Claims.Access {
		access = append(access, fmt.Sprintf("%s:%s:%s", a.Type, a.Name, strings.Join(a.Actions, ",")))
	}
	return fmt.Sprintf("{alg=%s kid=%q x5c=%d iss=%q sub=%q aud=%s exp=%s access=[%s]}",
		j.Header.Alg, j.Header.Kid, len(j.Header.X5C), j.Claims.Iss, j.Claims.Sub,
		j.Claims.Aud, j.Claims.Exp, strings.Join(access, " "))
}
