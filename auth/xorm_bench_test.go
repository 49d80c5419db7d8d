package auth

import (
	"fmt"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse/gatehouse/internal/sqltest"
)

// BenchmarkCachedLoginXorm compares a repeat login of a static user with
// one of an xorm_auth user (SQLite, bcrypt cost 10 for both), the same
// request each time:
//
//   - credential-cache: without the grant cache: parsed, the password
//     answered by the credential cache (the database is not asked), decided
//     by the static acl;
//   - grant-cache: answered by the grant cache.
//
// docs/performance.md holds the figures; the target is xorm within 10% of
// static.
func BenchmarkCachedLoginXorm(b *testing.B) {
	d := sqltest.SQLite(b)
	d.CreateDockerAuthTables(b)
	hash, err := bcrypt.GenerateFromPassword([]byte("alicepw"), 10)
	if err != nil {
		b.Fatal(err)
	}
	d.AddUser(b, "sam", string(hash), `{"team": ["web"]}`)
	xorm := fmt.Sprintf("xorm_auth: {database_type: sqlite3, conn_string: %q}", d.Conn)
	for _, grants := range []bool{false, true} {
		for _, c := range []struct{ backend, user string }{{"static", "alice"}, {"xorm", "sam"}} {
			name := c.backend + "/credential-cache"
			if grants {
				name = c.backend + "/grant-cache"
			}
			b.Run(name, func(b *testing.B) {
				s := benchHandlerServer(b, xorm)
				if !grants {
					s.state.Load().grants = nil
				}
				benchServe(b, s, benchRequest("repository:"+c.user+"/app:pull,push", c.user, "alicepw"))
			})
		}
	}
}
