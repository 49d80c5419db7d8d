package harness

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"testing"
)

// Scenario is one end-to-end check of the seed blog policy, run in a fresh
// environment.
type Scenario struct {
	Name string
	// Anonymous runs the scenario with the anonymous user and the
	// public/* pull rule added to the configuration.
	Anonymous bool
	Run       func(t *testing.T, e *Env)
}

// PolicyScenarios prove the seed blog's policy (admin has full access to
// everything, every user full access to ${account}/*, access is denied by
// default) through a real registry and a real client.
var PolicyScenarios = []Scenario{
	{
		Name: "alice pushes and pulls alice-app",
		Run: func(t *testing.T, e *Env) {
			d := e.MustPush(t, Alice, "alice/app")
			e.MustPullDigest(t, Alice, "alice/app", d)
		},
	},
	{
		Name: "alice cannot push bob-app",
		Run: func(t *testing.T, e *Env) {
			_, err := e.Push(t, Alice, "bob/app")
			e.RequireDeniedByRegistry(t, err, "alice pushing bob/app")
			_, err = e.Pull(t, Bob, "bob/app")
			RequireNotFound(t, err, "bob pulling bob/app after alice's refused push")
		},
	},
	{
		Name: "bob cannot pull or overwrite alice-app",
		Run: func(t *testing.T, e *Env) {
			d := e.MustPush(t, Alice, "alice/app")
			_, err := e.Pull(t, Bob, "alice/app")
			e.RequireDeniedByRegistry(t, err, "bob pulling alice/app")
			_, err = e.Push(t, Bob, "alice/app")
			e.RequireDeniedByRegistry(t, err, "bob pushing alice/app")
			e.MustPullDigest(t, Alice, "alice/app", d)
		},
	},
	{
		Name: "admin pulls alice-app and lists the catalog",
		Run: func(t *testing.T, e *Env) {
			d := e.MustPush(t, Alice, "alice/app")
			e.MustPush(t, Bob, "bob/app")
			e.MustPullDigest(t, Admin, "alice/app", d)
			repos, err := e.Catalog(t, Admin)
			if err != nil {
				t.Fatalf("admin listing the catalog: %v", err)
			}
			RequireContains(t, repos, "alice/app", "admin's catalog")
			RequireContains(t, repos, "bob/app", "admin's catalog")
		},
	},
	{
		Name: "alice cannot list the catalog",
		Run: func(t *testing.T, e *Env) {
			e.MustPush(t, Alice, "alice/app")
			_, err := e.Catalog(t, Alice)
			e.RequireDeniedByRegistry(t, err, "alice listing the catalog")
		},
	},
	{
		Name: "wrong credentials get 401 from gatehouse",
		Run: func(t *testing.T, e *Env) {
			e.MustPush(t, Alice, "alice/app")
			for _, c := range []struct {
				name string
				cred Cred
			}{
				{"static user, wrong password", Cred{Alice.User, "not-" + Alice.Password}},
				{"htpasswd user, wrong password", Cred{Carol.User, "not-" + Carol.Password}},
				{"admin with alice's password", Cred{Admin.User, Alice.Password}},
				{"unknown user", Cred{"mallory", Alice.Password}},
				{"empty password", Cred{Alice.User, ""}},
			} {
				t.Run(c.name, func(t *testing.T) {
					_, err := e.Pull(t, c.cred, "alice/app")
					e.RequireRejectedByGatehouse(t, err, c.cred.Describe()+" pulling alice/app")
				})
			}
		},
	},
	{
		Name:      "anonymous pulls public-app only",
		Anonymous: true,
		Run: func(t *testing.T, e *Env) {
			pub := e.MustPush(t, Admin, "public/app")
			e.MustPush(t, Alice, "alice/app")
			e.MustPullDigest(t, Anonymous, "public/app", pub)
			_, err := e.Pull(t, Anonymous, "alice/app")
			e.RequireDeniedByRegistry(t, err, "anonymous pulling alice/app")
			_, err = e.Push(t, Anonymous, "public/app")
			e.RequireDeniedByRegistry(t, err, "anonymous pushing public/app")
			e.MustPullDigest(t, Anonymous, "public/app", pub)
		},
	},
	{
		Name: "anonymous is refused when not configured",
		Run: func(t *testing.T, e *Env) {
			e.MustPush(t, Admin, "public/app")
			_, err := e.Pull(t, Anonymous, "public/app")
			by := e.RequireRefused(t, err, "anonymous pulling public/app")
			t.Logf("anonymous pull refused by %s: %v", by, err)
		},
	},
	{
		Name: "htpasswd user carol pushes and pulls carol-app",
		Run: func(t *testing.T, e *Env) {
			d := e.MustPush(t, Carol, "carol/app")
			e.MustPullDigest(t, Carol, "carol/app", d)
			_, err := e.Push(t, Carol, "alice/app")
			e.RequireDeniedByRegistry(t, err, "carol pushing alice/app")
		},
	},
}

// RunPolicyScenarios runs every scenario with every key type, each in a fresh
// environment whose registry newRegistry builds.
func RunPolicyScenarios(t *testing.T, newRegistry RegistryFactory) {
	for _, kt := range KeyTypes {
		t.Run(string(kt), func(t *testing.T) {
			for _, sc := range PolicyScenarios {
				t.Run(sc.Name, func(t *testing.T) {
					e := NewEnv(t, newRegistry, kt, GatehouseOptions{Anonymous: sc.Anonymous})
					sc.Run(t, e)
				})
			}
		})
	}
}

// RunKidScenarios checks the token key header against a registry: the
// default header (x5c with the signing certificate and a libtrust kid), then
// with `x5c: false` the kid form the registry needs (accepted: alice pushes
// and pulls) and the one it does not know (rejected: her push is refused),
// which shows the registry really verified the kid.
func RunKidScenarios(t *testing.T, newRegistry RegistryFactory, accepted, rejected KidMode) {
	for _, kt := range KeyTypes {
		t.Run(string(kt), func(t *testing.T) {
			t.Run("default header is x5c and libtrust kid", func(t *testing.T) {
				e := NewEnv(t, newRegistry, kt, GatehouseOptions{})
				e.RequireTokenHeader(t, KidLibtrust, true)
				d := e.MustPush(t, Alice, "alice/app")
				e.MustPullDigest(t, Alice, "alice/app", d)
			})
			t.Run("x5c off, kid "+string(accepted)+" accepted", func(t *testing.T) {
				e := NewEnv(t, newRegistry, kt, GatehouseOptions{NoX5C: true, Kid: accepted})
				e.RequireTokenHeader(t, accepted, false)
				d := e.MustPush(t, Alice, "alice/app")
				e.MustPullDigest(t, Alice, "alice/app", d)
			})
			t.Run("x5c off, kid "+string(rejected)+" rejected", func(t *testing.T) {
				e := NewEnv(t, newRegistry, kt, GatehouseOptions{NoX5C: true, Kid: rejected})
				e.RequireTokenHeader(t, rejected, false)
				_, err := e.Push(t, Alice, "alice/app")
				e.RequireDeniedByRegistry(t, err, "alice pushing alice/app with a token the registry cannot attribute to a trusted key")
			})
		})
	}
}

// RequireTokenHeader asks Gatehouse for a token as alice and checks its
// header: the key type's alg, the kid of mode, and an x5c holding exactly
// the signing certificate (withX5C) or no x5c. It returns the token.
func (e *Env) RequireTokenHeader(t testing.TB, mode KidMode, withX5C bool) string {
	t.Helper()
	resp := e.RequestToken(t, Alice, "repository:alice/app:pull,push")
	if resp.Status != http.StatusOK {
		t.Fatalf("token request as alice: status %d, body %s", resp.Status, resp.Body)
	}
	var body struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal([]byte(resp.Body), &body); err != nil {
		t.Fatalf("token response is not JSON: %v: %s", err, resp.Body)
	}
	j, err := ParseJWT(body.Token)
	if err != nil {
		t.Fatalf("token: %v: %s", err, resp.Body)
	}
	desc := DescribeToken(body.Token)
	if j.Header.Alg != e.Key.Type.Alg() {
		t.Errorf("token alg = %q, want %q for a %s key: %s", j.Header.Alg, e.Key.Type.Alg(), e.Key.Type, desc)
	}
	wantKid, err := ExpectedKid(mode, e.Key.Public)
	if err != nil {
		t.Fatal(err)
	}
	if j.Header.Kid != wantKid {
		t.Errorf("token kid = %q, want the %s kid %q: %s", j.Header.Kid, mode, wantKid, desc)
	}
	switch {
	case !withX5C && len(j.Header.X5C) != 0:
		t.Errorf("token carries x5c (%d certs) with x5c: false: %s", len(j.Header.X5C), desc)
	case withX5C && (len(j.Header.X5C) != 1 || j.Header.X5C[0] != base64.StdEncoding.EncodeToString(e.Key.CertDER)):
		t.Errorf("token x5c = %d certs, want exactly the signing certificate: %s", len(j.Header.X5C), desc)
	}
	if body.AccessToken != body.Token {
		t.Errorf("access_token differs from token (protocol.md §0 item 2): %s", resp.Body)
	}
	return body.Token
}
