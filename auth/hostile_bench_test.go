package auth

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// hostileActions are MaxActions distinct actions of one length, so that no
// comparison is decided by the length alone.
var hostileActions = func() string {
	a := make([]string, MaxActions)
	for i := range a {
		a[i] = fmt.Sprintf("a%02d", i)
	}
	return strings.Join(a, ",")
}()

// fillScopes returns scopes from next until their encoded length, with
// "scope=" and "&" each, reaches limit.
func fillScopes(limit int, next func(i int) string) []string {
	var out []string
	n := 0
	for i := 0; ; i++ {
		s := next(i)
		if n += len("&scope=") + len(url.QueryEscape(s)); n > limit {
			return out
		}
		out = append(out, s)
	}
}

// hostileShapes are the most expensive scope lists to parse and decide,
// each filling limit bytes of scope parameters.
func hostileShapes(limit int) map[string][]string {
	long := func(i int) string { // MaxNameLength bytes, distinct in the last bytes
		n := fmt.Sprintf("alice/%02d", i%MaxScopes)
		return strings.Repeat("x", MaxNameLength-len(n)) + n
	}
	return map[string][]string{
		// One name, every scope with the same 16 actions: each merged.
		"one-name-16-actions": fillScopes(limit, func(int) string { return "repository:alice/app:" + hostileActions }),
		// The attack as reported: one name, 16 new actions in every scope.
		// Refused (400) once the merged actions pass MaxActions.
		"one-name-new-actions-400": fillScopes(limit, func(i int) string {
			a := make([]string, MaxActions)
			for j := range a {
				a[j] = fmt.Sprintf("a%d", i*MaxActions+j)
			}
			return "repository:alice/app:" + strings.Join(a, ",")
		}),
		// 64 short names, then each again: the most lookups per byte.
		"64-names-repeated": fillScopes(limit, func(i int) string { return fmt.Sprintf("repository:alice/%02d:a%02d", i%MaxScopes, i%MaxActions) }),
		// Max-length names differing at the end, repeated.
		"long-names-repeated": fillScopes(limit, func(i int) string { return "repository:" + long(i) + ":pull,push" }),
		// Max-length names with 16 actions each.
		"long-names-16-actions": fillScopes(limit, func(i int) string { return "repository:" + long(i) + ":" + hostileActions }),
		// Granted: alice's own names, as long as they go, 16 actions each.
		"granted-long-names": fillScopes(limit, func(i int) string {
			return fmt.Sprintf("repository:alice/%02d%s:%s", i%MaxScopes, strings.Repeat("y", MaxNameLength-8), hostileActions)
		}),
		// Equal-length actions repeated many times in one scope.
		"repeated-actions": {"repository:alice/app:" + strings.Repeat(hostileActions+",", (limit-64)/len(url.QueryEscape(hostileActions+",")))},
	}
}

// processCPU is the CPU time of the process, user and system, in
// nanoseconds: on a busy machine it varies less than the wall time.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func scopeQuery(scopes []string) string {
	var b strings.Builder
	b.WriteString("service=registry.example.com")
	for _, s := range scopes {
		b.WriteString("&scope=")
		b.WriteString(url.QueryEscape(s))
	}
	return b.String()
}

// BenchmarkHostileRequest compares a typical token request with the most
// expensive ones an unauthenticated client can send within the size
// limits (MaxQueryLength, MaxFormBytes, MaxScopes, MaxActions), through
// ServeHTTP with the grant cache off, so that every request is parsed,
// authenticated (alice's password from the credential cache), decided and
// signed. docs/performance.md has the figures; the bound is 10× typical.
func BenchmarkHostileRequest(b *testing.B) {
	run := func(b *testing.B, r *http.Request, body string) {
		s := benchHandlerServer(b, "")
		s.state.Load().grants = nil
		w := &benchWriter{h: http.Header{}}
		rd := strings.NewReader(body)
		r.Body = io.NopCloser(rd)
		s.ServeHTTP(w, r) // fills the credential cache
		want := w.status
		if want != http.StatusOK && want != http.StatusBadRequest {
			b.Fatalf("status %d", w.status)
		}
		b.ReportAllocs()
		b.ResetTimer()
		cpu := processCPU()
		for b.Loop() {
			w.status = 0
			rd.Reset(body)
			s.ServeHTTP(w, r)
		}
		b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
		if w.status != want {
			b.Fatalf("status %d, first %d", w.status, want)
		}
	}
	get := func(query string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/auth?"+query, nil)
		r.RemoteAddr = "127.0.0.1:40000"
		r.SetBasicAuth("alice", "alicepw")
		return r
	}
	post := func(form string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/auth", strings.NewReader(form))
		r.RemoteAddr = "127.0.0.1:40000"
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return r
	}
	typical := scopeQuery([]string{"repository:alice/app:pull,push"})
	b.Run("typical-get", func(b *testing.B) { run(b, get(typical), "") })
	postPrefix := "grant_type=password&client_id=bench&username=alice&password=alicepw&"
	b.Run("typical-post", func(b *testing.B) { run(b, post(postPrefix+typical), postPrefix+typical) })
	names := slices.Sorted(maps.Keys(hostileShapes(0)))
	for _, name := range names {
		q := scopeQuery(hostileShapes(MaxQueryLength - 64)[name])
		b.Run("get-"+name, func(b *testing.B) { run(b, get(q), "") })
	}
	// A form carries MaxScopeText of scopes, the rest of MaxFormBytes in an
	// unknown field whose escapes are checked.
	for _, name := range names {
		form := postPrefix + scopeQuery(hostileShapes(MaxScopeText - 64)[name])
		form = padForm(form)
		b.Run("post-"+name, func(b *testing.B) { run(b, post(form), form) })
	}
	// The most parameters, then padding.
	params := strings.Repeat("a=%41&", MaxQueryParams-8)
	b.Run("get-params", func(b *testing.B) { run(b, get(params+typical), "") })
	form := padForm(postPrefix + params + typical)
	b.Run("post-params", func(b *testing.B) { run(b, post(form), form) })
	// Past the limits: refused after reading.
	form = padForm(postPrefix + strings.Repeat("a&", MaxQueryParams) + typical)
	b.Run("post-too-many-params-400", func(b *testing.B) { run(b, post(form), form) })
	form = postPrefix + scopeQuery(hostileShapes(MaxFormBytes - 128)["granted-long-names"])
	b.Run("post-scope-too-long-400", func(b *testing.B) { run(b, post(form), form) })
}

// padForm fills form to MaxFormBytes with an unknown field of escapes.
func padForm(form string) string {
	n := (MaxFormBytes - len(form) - len("&pad=")) / 3
	return form + "&pad=" + strings.Repeat("%41", n)
}
