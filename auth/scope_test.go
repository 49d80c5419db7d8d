package auth

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseScopes(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   []Scope
	}{
		{"none", nil, nil},
		{"one", []string{"repository:alice/app:pull,push"},
			[]Scope{{"repository", "alice/app", []string{"pull", "push"}}}},
		{"repeated parameters", []string{"repository:a/b:pull", "repository:c/d:push"},
			[]Scope{{"repository", "a/b", []string{"pull"}}, {"repository", "c/d", []string{"push"}}}},
		{"space separated in one value", []string{"repository:a/b:pull repository:c/d:pull,push"},
			[]Scope{{"repository", "a/b", []string{"pull"}}, {"repository", "c/d", []string{"pull", "push"}}}},
		{"name with host and port", []string{"repository:localhost:5000/alice/app:pull"},
			[]Scope{{"repository", "localhost:5000/alice/app", []string{"pull"}}}},
		{"resource class dropped", []string{"repository(plugin):vieux/sshfs:pull"},
			[]Scope{{"repository", "vieux/sshfs", []string{"pull"}}}},
		{"catalog keeps the star", []string{"registry:catalog:*"},
			[]Scope{{"registry", "catalog", []string{"*"}}}},
		{"unknown actions kept", []string{"repository:a/b:delete,frobnicate"},
			[]Scope{{"repository", "a/b", []string{"delete", "frobnicate"}}}},
		{"same resource merged", []string{"repository:a/b:pull", "repository:a/b:push,pull"},
			[]Scope{{"repository", "a/b", []string{"pull", "push"}}}},
		{"duplicate actions dropped", []string{"repository:a/b:pull,pull,,push"},
			[]Scope{{"repository", "a/b", []string{"pull", "push"}}}},
		{"empty action list", []string{"repository:a/b:"},
			[]Scope{{"repository", "a/b", []string{}}}},
		{"blank value ignored", []string{"", "  "}, nil},
		{"empty name (zot's catalog)", []string{"repository::pull"},
			[]Scope{{"repository", "", []string{"pull"}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseScopes(tc.values)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestParseScopesErrors(t *testing.T) {
	many := make([]string, MaxScopes+1)
	for i := range many {
		many[i] = "repository:r" + strings.Repeat("x", i) + ":pull"
	}
	var actions []string
	for i := range MaxActions + 1 {
		actions = append(actions, strings.Repeat("a", i+1))
	}
	manyActions := strings.Join(actions, ",")
	tests := []struct {
		name   string
		values []string
		want   string
	}{
		{"no colon", []string{"repository"}, "type:name:actions"},
		{"one colon", []string{"repository:a/b"}, "type:name:actions"},
		{"empty type", []string{":a/b:pull"}, "resource type"},
		{"uppercase type", []string{"Repository:a/b:pull"}, "resource type"},
		{"unclosed class", []string{"repository(plugin:a/b:pull"}, "resource class"},
		{"class without type", []string{"(plugin):a/b:pull"}, "resource class"},
		{"name too long", []string{"repository:" + strings.Repeat("a", MaxNameLength+1) + ":pull"}, "longer than"},
		{"too many scopes", many, "more than"},
		{"too many actions", []string{"repository:a:" + manyActions}, "more than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseScopes(tc.values)
			if !errors.Is(err, ErrInvalidScope) {
				t.Fatalf("err = %v, want ErrInvalidScope", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %q, want it to mention %q", err, tc.want)
			}
		})
	}
}
