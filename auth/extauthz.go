package auth

import (
	"context"

	"github.com/gatehouse/gatehouse/acl"
)

// extAuthz is the `ext_authz:` section: a program decides each scope the
// ACLs before it do not match, and always matches (docker_auth's ext_authz
// never passes a scope on), so casbin after it is asked only when it is
// not configured. A decision's Rule is the program's exit status.
type extAuthz struct{ e *acl.Ext }

func (x extAuthz) source() string   { return "ext_authz" }
func (x extAuthz) notReady() string { return "" }
func (x extAuthz) Close() error     { return nil }

// decide runs the program within its own timeout: the authorizer interface
// carries no request context.
func (x extAuthz) decide(r *acl.Request) (acl.Decision, error) {
	return x.e.Decide(context.Background(), r)
}

var _ authorizer = extAuthz{}
