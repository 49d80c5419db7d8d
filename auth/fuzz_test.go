package auth

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// FuzzParseScopes: any scope value is parsed or refused, never a panic, and
// what is parsed renders back to itself.
func FuzzParseScopes(f *testing.F) {
	for _, s := range []string{
		"repository:alice/app:pull,push", "repository:localhost:5000/a/b:pull",
		"repository(plugin):x/y:pull", "registry:catalog:*", "a:b:c d:e:f", "::", ":", "repository:a:",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		scopes, err := ParseScopes([]string{value})
		if err != nil {
			return
		}
		for _, sc := range scopes {
			if sc.Type == "" || len(sc.Name) > MaxNameLength || len(sc.Actions) > MaxActions {
				t.Fatalf("parsed %q into %+v", value, sc)
			}
			again, err := ParseScopes([]string{sc.String()})
			if err != nil || len(again) != 1 || !reflect.DeepEqual(again[0], sc) {
				t.Fatalf("%q: %+v renders as %q, which parses to %+v (%v)", value, sc, sc.String(), again, err)
			}
		}
	})
}

// FuzzParseRequest: any query string and Authorization header give a
// request or a 4xx answer, never a panic.
func FuzzParseRequest(f *testing.F) {
	f.Add("service=registry&scope=repository:a/b:pull&account=alice", "Basic YWxpY2U6cHc=", "X-Forwarded-For", "1.2.3.4, 5.6.7.8")
	f.Add("service=r&offline_token=true", "Basic Og==", "", "")
	f.Add("scope=%zz", "Bearer x", "X-Real-Ip", "::1")
	f.Add("service=r", "basic !!!", "X-Real-Ip", "")
	f.Fuzz(func(t *testing.T, query, authorization, ipHeader, ipValue string) {
		r := httptest.NewRequest(http.MethodGet, "/auth", nil)
		r.URL.RawQuery = query
		if authorization != "" {
			r.Header.Set("Authorization", authorization)
		}
		if ipValue != "" && ipHeader != "" && !strings.ContainsAny(ipHeader, ":\r\n \t") {
			r.Header.Set(ipHeader, ipValue)
		}
		for _, refresh := range []bool{false, true} {
			req, e := parseRequest(r, clientIPConfig{header: ipHeader, pos: -1}, refresh)
			switch {
			case e != nil && (e.Status < 400 || e.Status >= 500):
				t.Fatalf("status %d for a malformed request", e.Status)
			case e == nil && req.Service == "":
				t.Fatalf("accepted a request without service: %+v", req)
			}
		}
	})
}

// FuzzParsePost: any form body and content type give an OAuth2 request or
// a 4xx answer.
func FuzzParsePost(f *testing.F) {
	f.Add("grant_type=password&service=r&client_id=c&username=a&password=b&scope=repository:a:pull", "application/x-www-form-urlencoded")
	f.Add("grant_type=refresh_token&service=r&client_id=c&refresh_token=x&access_type=offline", "application/x-www-form-urlencoded; charset=utf-8")
	f.Add("grant_type=password&scope=%", "application/x-www-form-urlencoded")
	f.Add("{}", "application/json")
	f.Fuzz(func(t *testing.T, body, contentType string) {
		r := httptest.NewRequest(http.MethodPost, "/auth", strings.NewReader(body))
		r.Header.Set("Content-Type", contentType)
		req, e := parsePost(httptest.NewRecorder(), r, clientIPConfig{})
		switch {
		case e != nil && (e.Status < 400 || e.Status >= 500):
			t.Fatalf("status %d for a malformed form", e.Status)
		case e == nil && (req.Service == "" || req.ClientID == "" || (req.Grant != GrantPassword && req.Grant != GrantRefresh)):
			t.Fatalf("accepted an incomplete form: %+v", req)
		case e == nil && req.Grant == GrantPassword && req.Account == "":
			t.Fatalf("a password grant without a user: %+v", req)
		}
	})
}
