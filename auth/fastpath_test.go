package auth

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/token"
)

// The hot-path replacements must behave exactly as what they replace.

func TestAppendTokenResponseMatchesEncodingJSON(t *testing.T) {
	tok := "eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl-_"
	for _, resp := range []tokenResponse{
		{Token: tok, AccessToken: tok, ExpiresIn: 900, IssuedAt: "2026-11-23T20:00:00Z"},
		{Token: tok, AccessToken: tok, ExpiresIn: 60, IssuedAt: "2026-11-23T20:00:00Z", Scope: "repository:a/b:pull,push registry:catalog:*", RefreshToken: "rt.x"},
		{Token: tok, AccessToken: tok, ExpiresIn: 0, IssuedAt: "", RefreshToken: "rt"},
		{Token: tok, AccessToken: tok + "x", ExpiresIn: -1, IssuedAt: "t", Scope: "repository:a/b:"},
		// Strings encoding/json escapes: the fallback must be taken.
		{Token: tok, AccessToken: tok, IssuedAt: "t", Scope: `repository:a"b/c:pull`},
		{Token: tok, AccessToken: tok, IssuedAt: "t", Scope: "repository:a<b>&c:pull"},
		{Token: tok, AccessToken: tok, IssuedAt: "t", Scope: "repository:é/c:pull"},
		{Token: tok, AccessToken: "a\tb", IssuedAt: "t"},
	} {
		want, err := json.Marshal(&resp)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := appendTokenResponse(nil, &resp)
		if !ok {
			got = want // the fallback
			if jsonPlain(resp.AccessToken) && jsonPlain(resp.Scope) && jsonPlain(resp.RefreshToken) {
				t.Errorf("%+v: fast path refused plain strings", resp)
			}
		}
		if string(got) != string(want) {
			t.Errorf("appendTokenResponse(%+v)\n got %s\nwant %s", resp, got, want)
		}
	}
}

func TestParseQueryMatchesNetURL(t *testing.T) {
	for _, raw := range []string{
		"",
		"service=registry&scope=repository:a/b:pull",
		"service=reg%20istry&scope=repository%3Aa%2Fb%3Apull%2Cpush&scope=repository:c/d:push",
		"service=a&service=b&client_id=&client_id=x&account=alice&offline_token=true",
		"service=&service=b",
		"scope=a+b&scope=&scope",
		"&&service=x&&",
		"service",
		"service=x;y",
		"a=%zz&service=x",
		"%zz=1&service=x",
		"service=x&b=%",
		"serv%69ce=x&account=bob%40example.com",
		"unknown=1&other=2&service=s",
		"service=%41%62%2b%2B+%7e&scope=%",
		"service=a%4",
		"service=a%4g",
		"service=%g1",
		"service=%",
		"service=ab%20",
		"service=%e2%82%ac+x%2C%2cy&account=%00",
		"service=+&scope=+&scope=%2B",
		"grant_type=password&username=alice&password=&access_type=offline&refresh_token=t%3D",
		"password&username=a&grant_type=x&grant_type=y",
	} {
		want, wantErr := url.ParseQuery(raw)
		got, err := parseQuery(raw, queryParamNames)
		form, formErr := parseQuery(raw, formFieldNames)
		if (formErr != nil) != (err != nil) {
			t.Errorf("%q: error %v as a form, %v as a query", raw, formErr, err)
		}
		if (err != nil) != (wantErr != nil) {
			t.Errorf("%q: error %v, net/url says %v", raw, err, wantErr)
			continue
		}
		if err != nil {
			continue
		}
		for i, name := range queryParamNames {
			if got.get(i) != want.Get(name) {
				t.Errorf("%q: %s = %q, net/url says %q", raw, name, got.get(i), want.Get(name))
			}
		}
		for i, name := range formFieldNames {
			if form.get(i) != want.Get(name) || form.has(i) != want.Has(name) {
				t.Errorf("%q: form field %s = %q (present %v), net/url says %q (%v)",
					raw, name, form.get(i), form.has(i), want.Get(name), want.Has(name))
			}
		}
		if !reflect.DeepEqual(got.scopes, want["scope"]) {
			t.Errorf("%q: scopes %q, net/url says %q", raw, got.scopes, want["scope"])
		}
	}
}

func TestLazyDeadline(t *testing.T) {
	type key struct{}
	parent := context.WithValue(context.Background(), key{}, "v")

	t.Run("never started", func(t *testing.T) {
		c := withLazyDeadline(parent, time.Now().Add(time.Hour))
		if c.Value(key{}) != "v" || c.started.Load() {
			t.Fatal("Value must come from the parent without starting a timer")
		}
		c.stop()
		if !errors.Is(c.Err(), context.Canceled) {
			t.Fatalf("after stop: Err %v", c.Err())
		}
		select {
		case <-c.Done():
		default:
			t.Fatal("after stop: Done is open")
		}
	})
	t.Run("deadline", func(t *testing.T) {
		d := time.Now().Add(20 * time.Millisecond)
		c := withLazyDeadline(parent, d)
		defer c.stop()
		if got, ok := c.Deadline(); !ok || !got.Equal(d) {
			t.Fatalf("Deadline %v %v", got, ok)
		}
		child, cancel := context.WithCancel(c)
		defer cancel()
		<-c.Done()
		<-child.Done()
		if !errors.Is(c.Err(), context.DeadlineExceeded) || !errors.Is(child.Err(), context.DeadlineExceeded) {
			t.Fatalf("Err %v, child %v", c.Err(), child.Err())
		}
		if c.Value(key{}) != "v" {
			t.Fatal("Value lost once started")
		}
	})
	t.Run("parent canceled", func(t *testing.T) {
		p, cancelParent := context.WithCancel(parent)
		c := withLazyDeadline(p, time.Now().Add(time.Hour))
		defer c.stop()
		done := c.Done()
		cancelParent()
		<-done
		if !errors.Is(c.Err(), context.Canceled) {
			t.Fatalf("Err %v", c.Err())
		}
	})
	t.Run("stop cancels children", func(t *testing.T) {
		c := withLazyDeadline(parent, time.Now().Add(time.Hour))
		child, cancel := context.WithTimeout(c, time.Hour)
		defer cancel()
		c.stop()
		<-child.Done()
		if !errors.Is(child.Err(), context.Canceled) {
			t.Fatalf("child Err %v", child.Err())
		}
	})
}

func TestGrantedListMatchesJoin(t *testing.T) {
	tests := []struct {
		name    string
		scope   Scope
		granted []string
	}{
		{"all granted in order", Scope{"repository", "a/b", []string{"pull", "push"}}, []string{"pull", "push"}},
		{"all granted, asked out of order", Scope{"repository", "a/b", []string{"push", "pull"}}, []string{"pull", "push"}},
		{"some granted", Scope{"repository", "a/b", []string{"pull", "push"}}, []string{"pull"}},
		{"none granted", Scope{"repository", "a/b", []string{"pull"}}, []string{}},
		{"nothing asked", Scope{"repository", "a/b", []string{}}, []string{}},
		{"catalog star", Scope{"registry", "catalog", []string{"*"}}, []string{"*"}},
		{"host:port name", Scope{"repository", "reg:5000/a", []string{"pull"}}, []string{"pull"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, want := grantedList(tt.scope.String(), tt.scope.Actions, tt.granted), strings.Join(tt.granted, ","); got != want {
				t.Fatalf("grantedList = %q, want %q", got, want)
			}
		})
	}
}

func TestContentLengthValues(t *testing.T) {
	// 64 slots: 5, 69 and 133 share one, and take turns in it.
	for _, n := range []int{0, 5, 2390, 69, 5, 133, 2390, 4312, 5, 1 << 20} {
		v := contentLength(n)
		if len(v) != 1 || v[0] != strconv.Itoa(n) || cap(v) != 1 {
			t.Fatalf("contentLength(%d) = %q (cap %d)", n, v, cap(v))
		}
	}
}

// TestAuthorizeAllocatesNothingOfItsOwn: authorize adds no allocation to
// those of state.decide, so a request that is decided (a credential-cache
// hit, docs/performance.md) does not pay for a heap-allocated grant; only
// the grant cache's copy is.
func TestAuthorizeAllocatesNothingOfItsOwn(t *testing.T) {
	s, _ := testServer(t, "")
	st := s.state.Load()
	scopes, err := ParseScopes([]string{"repository:alice/app:pull,push", "repository:public/base:pull"})
	if err != nil {
		t.Fatal(err)
	}
	req := &Request{Account: "alice", Service: "registry", Scopes: scopes, IP: netip.MustParseAddr("198.51.100.7")}
	id := identity{Account: "alice", Backend: "static"}
	decide := testing.AllocsPerRun(100, func() { st.decide(req, &id) })
	var access []token.Access
	authorize := testing.AllocsPerRun(100, func() {
		g, e := s.authorize(st, req, &id)
		if e != nil {
			t.Fatal(e)
		}
		access = g.access
	})
	if len(access) != 2 || len(access[0].Actions) != 2 {
		t.Fatalf("granted %+v, want pull,push on alice/app", access)
	}
	if authorize != decide {
		t.Fatalf("authorize makes %.0f allocations, decide %.0f: authorize allocates %.0f of its own", authorize, decide, authorize-decide)
	}
}
