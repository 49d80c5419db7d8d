package auth

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/acl"
	"github.com/gatehouse/gatehouse/authn"
	"github.com/gatehouse/gatehouse/token"
)

// Decision is how one requested scope was decided: for the audit line and
// for gatehouse check.
type Decision struct {
	// Scope is the requested scope, "type:name:actions".
	Scope string `json:"scope"`
	// Granted lists the granted actions, comma-separated ("" for none).
	Granted string `json:"granted"`
	// Rule is the index of the deciding ACL rule, -1 when none matched.
	Rule int `json:"rule"`
	// Comment is that rule's comment.
	Comment string `json:"comment,omitempty"`
	// ACL is "acl_mongo" when the MongoDB ACL decided; Rule is then the
	// deciding document's seq. Empty for the static acl.
	ACL string `json:"acl,omitempty"`
}

// authorize decides every requested scope: the static acl first, then, when
// no rule matched, acl_mongo (docker_auth's order). A scope nothing grants
// stays in the token with no actions: a partial or empty grant is not an
// error. complete reports whether every requested action was granted. err
// is set when acl_mongo was needed and has never loaded (the client gets
// 503); the decisions still say which scopes it concerns.
func (st *state) authorize(req *Request, id *identity) (access []token.Access, logs []Decision, complete bool, err error) {
	access = make([]token.Access, 0, len(req.Scopes))
	logs = make([]Decision, 0, len(req.Scopes))
	complete = true
	for _, sc := range req.Scopes {
		ar := &acl.Request{
			Account: id.Account,
			Type:    sc.Type,
			Name:    sc.Name,
			Service: req.Service,
			IP:      req.IP,
			Labels:  id.Labels,
			Actions: sc.Actions,
		}
		d := st.acl.Decide(ar)
		which := ""
		if !d.Matched && st.aclMongo != nil {
			which = "acl_mongo"
			md, merr := st.aclMongo.Decide(ar)
			d = md.Decision
			switch {
			case merr != nil:
				d.Comment = "acl_mongo unavailable: " + merr.Error()
				err = cmp.Or(err, merr)
			case d.Matched:
				d.Rule = int(md.Seq)
			}
		}
		access = append(access, token.Access{Type: sc.Type, Name: sc.Name, Actions: d.Actions})
		complete = complete && len(d.Actions) == len(sc.Actions)
		scope := sc.String()
		logs = append(logs, Decision{Scope: scope, Granted: grantedList(scope, sc.Actions, d.Actions), Rule: d.Rule, Comment: d.Comment, ACL: which})
	}
	return access, logs, complete, err
}

// grantedList is granted joined with commas. When every requested action
// was granted, in the order asked (the usual case), that is the end of
// scope, the requested scope's string: no new string is made.
func grantedList(scope string, requested, granted []string) string {
	if slices.Equal(requested, granted) {
		n := max(len(granted)-1, 0)
		for _, a := range granted {
			n += len(a)
		}
		return scope[len(scope)-n:]
	}
	return strings.Join(granted, ",")
}

// identify establishes who the request is from: a refresh token is checked
// and its account looked up again; anything else goes through the
// authenticator chain.
func (st *state) identify(ctx context.Context, req *Request) (identity, *Error) {
	if req.Grant != GrantRefresh {
		return st.chain.authenticate(ctx, req)
	}
	if st.refresh == nil {
		return identity{}, st.chain.unauthorized(msgBadRefresh, errors.New("refresh token presented but oauth2 is off"))
	}
	claims, err := st.refresh.Verify(req.RefreshToken, req.Service)
	if err != nil {
		return identity{}, st.chain.unauthorized(msgBadRefresh, err)
	}
	req.Account = claims.Subject
	id, e := st.chain.lookup(ctx, claims.Authenticator, claims.Subject)
	if e != nil {
		return identity{}, e
	}
	if !st.refresh.Bound(claims, id.Credential) {
		return identity{}, st.chain.unauthorized(msgBadRefresh, fmt.Errorf("refresh token: the credential of %q in %s changed since it was issued", claims.Subject, claims.Authenticator))
	}
	return id, nil
}

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
func (st *state) respond(req *Request, id *identity, access []token.Access) (tokenResponse, error) {
	tok, err := st.signer.Issue(id.Account, req.Service, access)
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
	if req.Offline && st.refresh != nil && id.Account != "" {
		if req.Grant == GrantRefresh {
			resp.RefreshToken = req.RefreshToken
		} else if resp.RefreshToken, err = st.refresh.Issue(id.Account, req.Service, id.Backend, id.Credential); err != nil {
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

// grantName names how the request identified itself, for the audit log.
func grantName(req *Request) string {
	switch {
	case req.Grant == GrantRefresh:
		return GrantRefresh
	case !req.HasCredentials:
		return "anonymous"
	}
	return GrantPassword
}

func ipString(ip netip.Addr) string {
	if !ip.IsValid() {
		return ""
	}
	return ip.String()
}

// Explain decides scopes for account, with labels, as the token endpoint
// does after authentication: the same ACLs, in the same order. gatehouse
// check uses it to debug a policy without a registry.
func (s *Server) Explain(account string, labels authn.Labels, ip netip.Addr, service string, scopes []Scope) []Decision {
	st := s.state.Load()
	if st == nil {
		return nil
	}
	_, decisions, _, _ := st.authorize(&Request{Service: service, Scopes: scopes, IP: ip}, &identity{Account: account, Labels: labels})
	return decisions
}
