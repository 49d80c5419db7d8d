package auth

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/acl"
	"github.com/gatehouse/gatehouse/token"
)

// decisionLog is how one scope was decided, for the audit line.
type decisionLog struct {
	Scope   string `json:"scope"`
	Granted string `json:"granted"`
	Rule    int    `json:"rule"` // -1: no rule matched
	Comment string `json:"comment,omitempty"`
}

// authorize decides every requested scope. A scope nothing grants stays in
// the token with no actions: a partial or empty grant is not an error.
func (st *state) authorize(req *Request, id *identity) ([]token.Access, []decisionLog) {
	access := make([]token.Access, 0, len(req.Scopes))
	logs := make([]decisionLog, 0, len(req.Scopes))
	for _, sc := range req.Scopes {
		d := st.acl.Decide(&acl.Request{
			Account: id.Account,
			Type:    sc.Type,
			Name:    sc.Name,
			Service: req.Service,
			IP:      req.IP,
			Labels:  id.Labels,
			Actions: sc.Actions,
		})
		access = append(access, token.Access{Type: sc.Type, Name: sc.Name, Actions: d.Actions})
		logs = append(logs, decisionLog{Scope: sc.String(), Granted: strings.Join(d.Actions, ","), Rule: d.Rule, Comment: d.Comment})
	}
	return access, logs
}

type tokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
}

func writeToken(w http.ResponseWriter, t *token.Token) {
	body, _ := json.Marshal(tokenResponse{
		Token:       t.Raw,
		AccessToken: t.Raw,
		ExpiresIn:   int64(t.ExpiresAt.Sub(t.IssuedAt) / time.Second),
		IssuedAt:    t.IssuedAt.UTC().Format(time.RFC3339),
	})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

func scopeStrings(scopes []Scope) []string {
	out := make([]string, len(scopes))
	for i, s := range scopes {
		out[i] = s.String()
	}
	return out
}

func ipString(ip netip.Addr) string {
	if !ip.IsValid() {
		return ""
	}
	return ip.String()
}
