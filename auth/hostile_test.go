package auth

import (
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// actionList is n distinct actions from the k-th on: "a<k>,a<k+1>,…".
func actionList(k, n int) string {
	a := make([]string, n)
	for i := range a {
		a[i] = fmt.Sprintf("a%d", k+i)
	}
	return strings.Join(a, ",")
}

func TestParseScopesMerge(t *testing.T) {
	// Nine other resources first, so that the merges go through the index.
	var others []string
	var otherScopes []Scope
	for i := range linearScopes + 1 {
		others = append(others, fmt.Sprintf("repository:o/%d:pull", i))
		otherScopes = append(otherScopes, Scope{"repository", fmt.Sprintf("o/%d", i), []string{"pull"}})
	}
	tests := []struct {
		name   string
		values []string
		want   []Scope
	}{
		{"order of first appearance",
			[]string{"repository:a/b:push,x1", "repository:c/d:pull", "repository:a/b:pull,x1 repository:a/b:x2,push"},
			[]Scope{{"repository", "a/b", []string{"push", "x1", "pull", "x2"}}, {"repository", "c/d", []string{"pull"}}}},
		{"exactly MaxActions over two scopes",
			[]string{"repository:a/b:" + actionList(0, 10), "repository:a/b:" + actionList(4, 12)},
			[]Scope{{"repository", "a/b", strings.Split(actionList(0, MaxActions), ",")}}},
		{"the same actions repeated many times",
			slices.Repeat([]string{"repository:a/b:" + actionList(0, MaxActions)}, 500),
			[]Scope{{"repository", "a/b", strings.Split(actionList(0, MaxActions), ",")}}},
		{"same name, other type",
			[]string{"repository:a/b:pull", "registry:a/b:push", "repository:a/b:push"},
			[]Scope{{"repository", "a/b", []string{"pull", "push"}}, {"registry", "a/b", []string{"push"}}}},
		{"merged after the index is built",
			append(append([]string{"repository:a/b:pull"}, others...), "repository:o/3:push", "repository:a/b:push"),
			append(append([]Scope{{"repository", "a/b", []string{"pull", "push"}}}, otherScopes[:3]...),
				append([]Scope{{"repository", "o/3", []string{"pull", "push"}}}, otherScopes[4:]...)...)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseScopes(tc.values)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseScopesMergeCap(t *testing.T) {
	tests := []struct {
		name   string
		values []string
	}{
		{"two scopes", []string{"repository:a/b:" + actionList(0, 10), "repository:a/b:" + actionList(10, 7)}},
		{"one new action each", func() []string {
			var v []string
			for i := range MaxActions + 1 {
				v = append(v, fmt.Sprintf("repository:a/b:pull,a%d", i))
			}
			return v
		}()},
		{"the reported attack", func() []string {
			var v []string
			for i := range 930 {
				v = append(v, "repository:a/b:"+actionList(i*MaxActions, MaxActions))
			}
			return v
		}()},
		{"after the index is built", func() []string {
			v := []string{"repository:a/b:" + actionList(0, MaxActions)}
			for i := range linearScopes + 1 {
				v = append(v, fmt.Sprintf("repository:o/%d:pull", i))
			}
			return append(v, "repository:a/b:extra")
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseScopes(tc.values)
			if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("more than %d actions", MaxActions)) {
				t.Fatalf("err = %v, want more than %d actions", err, MaxActions)
			}
		})
	}
}

// TestHostileScopeRequestsRefused: requests past the scope and parameter
// bounds get 400 with an errcode body, GET and POST alike.
func TestHostileScopeRequestsRefused(t *testing.T) {
	s := newOAuthEnv(t).server("", "")
	repeat := func(n int, f func(i int) string) string {
		var b strings.Builder
		for i := range n {
			b.WriteString("&" + f(i))
		}
		return b.String()
	}
	overCap := repeat(2, func(i int) string { return "scope=" + url.QueryEscape("repository:alice/app:"+actionList(i*10, 10)) })
	tests := []struct {
		name, method, params string
		code, message        string
	}{
		{"merged actions past the cap", "GET", overCap, CodeBadRequest, "more than 16 actions"},
		{"merged actions past the cap", "POST", overCap, CodeBadRequest, "more than 16 actions"},
		{"too many parameters", "GET", repeat(MaxQueryParams, func(int) string { return "x" }), CodeTooLarge, "too many parameters"},
		{"too many parameters", "POST", repeat(MaxQueryParams, func(int) string { return "x" }), CodeTooLarge, "too many parameters"},
		{"scope text past MaxScopeText", "POST", repeat(MaxScopeText/500+1, func(i int) string {
			return fmt.Sprintf("scope=repository:alice/%03d%s:pull", i, strings.Repeat("x", 480))
		}), CodeTooLarge, "scope parameters too long"},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.name, func(t *testing.T) {
			var r result
			if tc.method == "GET" {
				r = get(s, "service=registry"+tc.params, "alice", "alicepw")
			} else {
				f, err := url.ParseQuery("grant_type=password&service=registry&client_id=test&username=alice&password=alicepw" + tc.params)
				if err != nil {
					t.Fatal(err)
				}
				r = post(s, f)
			}
			if r.status != 400 {
				t.Fatalf("status %d, body %s", r.status, r.raw)
			}
			var eb errorBody
			if err := json.Unmarshal([]byte(r.raw), &eb); err != nil || len(eb.Errors) != 1 {
				t.Fatalf("body %q is not an errcode list: %v", r.raw, err)
			}
			if e := eb.Errors[0]; e.Code != tc.code || !strings.Contains(e.Message, tc.message) {
				t.Fatalf("error %+v, want code %s and a message with %q", e, tc.code, tc.message)
			}
		})
	}
}

// TestMergedScopesGranted: scopes repeating a name, within the cap, are
// answered with the merged actions (ordered as the token orders granted
// actions; ParseScopes keeps the order of first appearance).
func TestMergedScopesGranted(t *testing.T) {
	s := newOAuthEnv(t).server("", "")
	r := get(s, "service=registry&scope=repository:alice/app:push&scope=repository:alice/app:pull,push", "alice", "alicepw")
	if r.status != 200 {
		t.Fatalf("status %d, body %s", r.status, r.raw)
	}
	c := claimsOf(t, r.body.Token)
	if len(c.Access) != 1 || !reflect.DeepEqual(c.Access[0].Actions, []string{"pull", "push"}) {
		t.Fatalf("access %+v, want alice/app pull,push", c.Access)
	}
}
