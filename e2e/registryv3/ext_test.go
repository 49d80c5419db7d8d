package registryv3

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/gatehouse/gatehouse/e2e/harness"
)

// TestExtAuthPushPull pushes and pulls through registry v3.1.2 as a user
// whom only an ext_auth program knows: it accepts frank's password and
// gives him the label team=orange, which the rule on ${labels:team}/*
// turns into rights on orange/app.
func TestExtAuthPushPull(t *testing.T) {
	prog := filepath.Join(t.TempDir(), "ext_auth.sh")
	if err := os.WriteFile(prog, []byte(`#!/bin/sh
read u p
if [ "$u" = frank ]; then
  [ "$p" = frank-pw ] || exit 1
  echo '{"labels": {"team": ["orange"]}}'
  exit 0
fi
exit 2
`), 0o755); err != nil {
		t.Fatal(err)
	}
	e := harness.NewEnv(t, newRegistry, harness.ECP256, harness.GatehouseOptions{
		ExtraACL: `  # A team owns its namespace.
  - match: {name: "${labels:team}/*"}
    actions: ["*"]
`,
		ExtraSections: fmt.Sprintf("ext_auth:\n  command: %s\n  timeout: 5s\n", prog),
	})
	frank := harness.Cred{User: "frank", Password: "frank-pw"}

	d := e.MustPush(t, frank, "orange/app")
	e.MustPullDigest(t, frank, "orange/app", d)

	_, err := e.Push(t, frank, "purple/app")
	e.RequireDeniedByRegistry(t, err, "frank pushing purple/app (not his team)")
	_, err = e.Pull(t, harness.Bob, "orange/app")
	e.RequireDeniedByRegistry(t, err, "static user bob pulling orange/app")
	_, err = e.Pull(t, harness.Cred{User: frank.User, Password: "not-" + frank.Password}, "orange/app")
	e.RequireRejectedByGatehouse(t, err, "frank with a wrong password")
}
