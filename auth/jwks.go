package auth

import (
	"net/http"

	"github.com/gatehouse/gatehouse/token"
)

// serveJWKS answers /.well-known/jwks.json: every published key under every
// kid form, or with ?key=current or ?key=next the one key set of that key
// alone, for registries that read exactly one key (zot).
func serveJWKS(w http.ResponseWriter, r *http.Request, signer *token.Signer) {
	q := r.URL.Query()
	if !q.Has("key") {
		servePublished(w, r, "application/json", signer.JWKSJSON())
		return
	}
	var body []byte
	switch q.Get("key") {
	case "current":
		body = signer.SingleKeyJWKS(false)
	case "next":
		if body = signer.SingleKeyJWKS(true); body == nil {
			writeError(w, &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: "no next key is configured (token.next_certificate)"})
			return
		}
	default:
		writeError(w, &Error{Status: http.StatusBadRequest, Code: CodeBadRequest, Message: `key must be "current" or "next"`})
		return
	}
	servePublished(w, r, "application/json", body)
}
