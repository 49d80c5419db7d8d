package auth

import "github.com/gatehouse/gatehouse/acl"

// casbinACL is the `casbin_authz:` section, the last authorizer asked. A
// scope it grants nothing is not matched, so, nothing coming after it, the
// scope is denied: docker_auth's default deny. Its matched decisions have
// Rule 0, casbin having no rule numbers.
type casbinACL struct{ c *acl.Casbin }

func (c casbinACL) source() string   { return "casbin_authz" }
func (c casbinACL) Close() error     { return nil }
func (c casbinACL) notReady() string { return "" }
func (c casbinACL) decide(r *acl.Request) (acl.Decision, error) {
	return c.c.Decide(r)
}

var _ authorizer = casbinACL{}
