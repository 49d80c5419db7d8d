package registryv3

import (
	"fmt"
	"testing"

	"github.com/gatehouse/gatehouse/e2e/harness"
	"github.com/gatehouse/gatehouse/internal/ldaptest"
)

// TestLDAPGroupPushPull pushes and pulls through registry v3.1.2 as an LDAP
// user whose rights come only from a group: dave is a member of the
// groupOfNames "pushers" in a throwaway slapd, memberOf becomes his label
// "groups", and the rule on ${labels:groups}/* grants him pushers/app.
func TestLDAPGroupPushPull(t *testing.T) {
	srv := ldaptest.Start(t)
	e := harness.NewEnv(t, newRegistry, harness.ECP256, harness.GatehouseOptions{
		ExtraACL: `  # Members of a directory group have full access to the group's namespace.
  - match: {name: "${labels:groups}/*"}
    actions: ["*"]
`,
		ExtraSections: fmt.Sprintf(`ldap_auth:
  addr: %s
  tls: starttls
  ca_certificate: %s
  bind_dn: %s
  bind_password_file: %s
  base: %s
  filter: (&(objectClass=inetOrgPerson)(uid=${account}))
  labels:
    groups: {attribute: memberOf, parse_cn: true}
`, srv.Addr, srv.CAFile, ldaptest.ServiceDN, srv.BindPasswordFile, ldaptest.People),
	})
	dave := harness.Cred{User: ldaptest.Dave.UID, Password: ldaptest.Dave.Password}

	d := e.MustPush(t, dave, "pushers/app")
	e.MustPullDigest(t, dave, "pushers/app", d)

	_, err := e.Push(t, dave, "developers/app")
	e.RequireDeniedByRegistry(t, err, "dave pushing developers/app (not his group)")
	_, err = e.Pull(t, harness.Bob, "pushers/app")
	e.RequireDeniedByRegistry(t, err, "static user bob pulling pushers/app")
	_, err = e.Pull(t, harness.Cred{User: dave.User, Password: "not-" + dave.Password}, "pushers/app")
	e.RequireRejectedByGatehouse(t, err, "dave with a wrong password")
}
