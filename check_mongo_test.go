package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gatehouse/gatehouse/internal/mongotest"
)

// TestCheckCommandMongoACL runs `gatehouse check` on a configuration with
// acl_mongo: a scope the static acl does not decide is explained by the
// MongoDB document's seq, and with the database down the reason is shown.
func TestCheckCommandMongoACL(t *testing.T) {
	srv := mongotest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := srv.Client(t).Database("docker_auth").Collection("acl").InsertOne(ctx, bson.D{
		{Key: "seq", Value: 10}, {Key: "match", Value: bson.D{{Key: "name", Value: "shared/*"}}},
		{Key: "actions", Value: bson.A{"pull"}}, {Key: "comment", Value: "everyone pulls shared/*"},
	}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "htpasswd"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	write := func(name, addr string) string {
		path := filepath.Join(dir, name)
		extra := fmt.Sprintf("acl_mongo:\n  dial_info: {addrs: [%q], timeout: 500ms, database: docker_auth}\n  collection: acl\n", addr)
		if err := os.WriteFile(path, []byte(opsConfig(t, dir, 1, extra)), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	tests := []struct {
		name string
		file string
		want []string
	}{
		{"loaded", write("up.yml", srv.Addr()), []string{
			"repository:alice/app:pull: pull (rule 0)",
			`repository:shared/x:pull,push: pull (acl_mongo seq 10 "everyone pulls shared/*")`,
			"repository:other/x:pull: nothing (no rule matched)",
		}},
		{"database down", write("down.yml", mongotest.ClosedAddr(t)), []string{
			"repository:alice/app:pull: pull (rule 0)",
			"repository:shared/x:pull,push: nothing (acl_mongo unavailable:",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			args := []string{"check", tc.file, "--account", "alice", "repository:alice/app:pull", "repository:shared/x:pull,push", "repository:other/x:pull"}
			if code := run(args, nil, &out, &errb); code != 0 {
				t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out.String(), errb.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}
