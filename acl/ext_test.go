package acl

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/extprog"
)

// TestExtDecide: the program gets docker_auth's AuthRequestInfo JSON for
// each scope, and its exit status decides it.
func TestExtDecide(t *testing.T) {
	dir := t.TempDir()
	got := filepath.Join(dir, "stdin.json")
	// Grants what is under the account's namespace, denies ops/*, fails on
	// broken/*; saves what it read.
	p := filepath.Join(dir, "authz.sh")
	if err := os.WriteFile(p, []byte(`#!/bin/sh
in=$(cat)
printf '%s' "$in" > `+got+`
case "$in" in
  *'"Name":"broken/'*) echo "no backend for broken" >&2; exit 2 ;;
  *'"Name":"ops/'*) exit 1 ;;
  *'"Name":"alice/'*) exit 0 ;;
esac
exit 1
`), 0o755); err != nil {
		t.Fatal(err)
	}
	e, err := NewExt(ExtConfig{extprog.Config{Command: p}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		req     Request
		want    Decision
		wantErr bool
		wantIn  string
	}{
		{name: "exit 0 grants the requested actions",
			req:    Request{Account: "alice", Type: "repository", Name: "alice/app", Service: "registry", IP: netip.MustParseAddr("::ffff:10.0.0.7"), Actions: []string{"push", "pull", "pull"}, Labels: map[string][]string{"team": {"blue"}}},
			want:   Decision{Matched: true, Rule: 0, Comment: "ext_authz: exit 0", Actions: []string{"pull", "push"}},
			wantIn: `{"Account":"alice","Type":"repository","Name":"alice/app","Service":"registry","IP":"10.0.0.7","Actions":["push","pull","pull"],"Labels":{"team":["blue"]}}`},
		{name: "exit 1 is a matching deny",
			req:    Request{Account: "alice", Type: "repository", Name: "ops/app", Service: "registry", Actions: []string{"pull"}},
			want:   Decision{Matched: true, Rule: 1, Comment: "ext_authz: exit 1", Actions: []string{}},
			wantIn: `{"Account":"alice","Type":"repository","Name":"ops/app","Service":"registry","IP":"","Actions":["pull"],"Labels":null}`},
		{name: "another status is an error",
			req:     Request{Account: "alice", Type: "repository", Name: "broken/app", Actions: []string{"pull"}},
			want:    Decision{Rule: -1},
			wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := e.Decide(context.Background(), &tc.req)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if !reflect.DeepEqual(d, tc.want) {
				t.Errorf("decision %+v, want %+v", d, tc.want)
			}
			if tc.wantIn == "" {
				return
			}
			in, err := os.ReadFile(got)
			if err != nil {
				t.Fatal(err)
			}
			if string(in) != tc.wantIn {
				t.Errorf("program read\n%s\nwant\n%s", in, tc.wantIn)
			}
			var back ExtRequest
			if err := json.Unmarshal(in, &back); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestExtDecideTimeout: a program that hangs is an error once the timeout
// passes, not a decision.
func TestExtDecideTimeout(t *testing.T) {
	p := filepath.Join(t.TempDir(), "hang.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\nsleep 30\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	e, err := NewExt(ExtConfig{extprog.Config{Command: p, Timeout: 200 * time.Millisecond}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.Decide(context.Background(), &Request{Account: "a", Type: "repository", Name: "x", Actions: []string{"pull"}})
	if !errors.Is(err, extprog.ErrTimeout) || d.Matched || !strings.Contains(err.Error(), "ext_authz") {
		t.Fatalf("decision %+v err %v, want an ext_authz timeout", d, err)
	}
}
