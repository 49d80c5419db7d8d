package auth

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"

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
	// deciding document's seq; "ext_authz" when the program decided, Rule
	// then its exit status; "casbin_authz" when casbin was asked (Rule 0
	// when it granted, -1 when it granted nothing). Empty for the static
	// acl.
	ACL string `json:"acl,omitempty"`
}

// decide decides every requested scope with the static acl, then the
// state's other authorizers in order: the first whose decision matches
// decides the scope (docker_auth's order: acl, then acl_mongo). A scope nothing grants stays in the token
// with no actions: a partial or empty grant is not an error. complete
// reports whether every requested action was granted. err is set when an
// authorizer that was needed could not answer (the client gets 503); the
// decisions still say which scopes it concerns.
func (st *state) decide(req *Request, id *identity) (access []token.Access, logs []Decision, complete bool, err error) {
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
		// The static acl, always first, is called directly: through the
		// interface ar would escape to the heap on every request.
		d := st.acl.Decide(ar)
		which := ""
		if !d.Matched && len(st.authorizers) > 0 {
			next := *ar // escapes; allocated only when another authorizer is asked
			for _, a := range st.authorizers {
				var aerr error
				d, aerr = a.decide(&next)
				which = a.source()
				if aerr != nil {
					d.Comment = which + " unavailable: " + aerr.Error()
					err = cmp.Or(err, aerr)
					break
				}
				if d.Matched {
					break
				}
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

// grantName names how the request identified itself, for the audit log.
func grantName(req *Request) string {
	switch {
	case req.Grant == GrantRefresh:
		return GrantRefresh
	case req.credKind != "":
		return req.credKind
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
	_, decisions, _, _ := st.decide(&Request{Service: service, Scopes: scopes, IP: ip}, &identity{Account: account, Labels: labels})
	return decisions
}
