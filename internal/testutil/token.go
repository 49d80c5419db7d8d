package testutil

import (
	"net/http"
	"testing"
	"time"
)

// WaitForToken asks url (a token request) with user and password until a
// server that is starting answers, for up to 30 s, and fails t unless the
// answer is 200. logs is printed on failure.
func WaitForToken(t testing.TB, url, user, password string, logs interface{ String() string }) {
	t.Helper()
	var resp *http.Response
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.SetBasicAuth(user, password)
		var err error
		if resp, err = http.DefaultClient.Do(req); err == nil {
			break
		}
	}
	if resp == nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("no token: %v\n%s", resp, logs.String())
	}
	resp.Body.Close()
}
