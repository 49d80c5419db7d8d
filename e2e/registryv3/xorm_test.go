package registryv3

import (
	"fmt"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse/gatehouse/e2e/harness"
	"github.com/gatehouse/gatehouse/internal/sqltest"
)

// TestXormUserAndACLPushPull pushes and pulls through registry v3.1.2 as a
// user kept in a SQL database (SQLite, docker_auth's xorm tables) whose
// rights come only from rules kept there: frank's label team=violet feeds
// acl_xorm's seq 10 "${labels:team}/*", and seq 20 keeps everybody else out
// of violet/*.
func TestXormUserAndACLPushPull(t *testing.T) {
	d := sqltest.SQLite(t)
	d.CreateDockerAuthTables(t)
	frank := harness.Cred{User: "frank", Password: "frank-pw"}
	hash, err := bcrypt.GenerateFromPassword([]byte(frank.Password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	d.AddUser(t, frank.User, string(hash), `{"team": ["violet"]}`)
	d.SetACL(t, map[int64]string{
		20: `{"match": {"name": "violet/*"}, "actions": [], "comment": "nobody else in violet/*"}`,
		10: `{"match": {"name": "${labels:team}/*"}, "actions": ["*"], "comment": "a team owns its namespace"}`,
	})
	e := harness.NewEnv(t, newRegistry, harness.ECP256, harness.GatehouseOptions{
		ExtraSections: fmt.Sprintf(`xorm_auth:
  database_type: sqlite3
  conn_string: %[1]q
acl_xorm:
  database_type: sqlite3
  conn_string: %[1]q
  cache_ttl: 1m
`, d.Conn),
	})

	dg := e.MustPush(t, frank, "violet/app")
	e.MustPullDigest(t, frank, "violet/app", dg)

	_, err = e.Pull(t, harness.Bob, "violet/app")
	e.RequireDeniedByRegistry(t, err, "static user bob pulling violet/app (acl_xorm seq 20)")
	_, err = e.Push(t, frank, "blue/app")
	e.RequireDeniedByRegistry(t, err, "frank pushing blue/app (no rule)")
	_, err = e.Pull(t, harness.Cred{User: frank.User, Password: "not-" + frank.Password}, "violet/app")
	e.RequireRejectedByGatehouse(t, err, "frank with a wrong password")
}
