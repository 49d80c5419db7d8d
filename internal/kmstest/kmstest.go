// Package kmstest runs a KMS API server for tests inside the test process:
// github.com/nsmithuk/local-kms's request handlers over its LevelDB store,
// served on a free loopback port with a data directory of the test's own.
// It needs nothing installed, so it never skips.
//
//	srv := kmstest.Start(t)             // also sets dummy AWS credentials
//	id := srv.CreateKey(t, "ECC_NIST_P256")
//	ref := srv.Ref(id)                  // awskms:///ID?region=…&endpoint=…
//	srv.Stop()                          // KMS is down: connections refused
//	srv.Restart()                       // same port, same keys
//	srv.Hang(true)                      // requests are accepted, never answered
//
// Tests import it, and bench/load, which serves it in a process of its own
// (kms-serve).
package kmstest

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	lkconfig "github.com/nsmithuk/local-kms/src/config"
	"github.com/nsmithuk/local-kms/src/data"
	"github.com/nsmithuk/local-kms/src/handler"
	"github.com/sirupsen/logrus"

	"github.com/gatehouse/gatehouse/internal/testutil"
)

// Region and Account are what local-kms puts in key ARNs.
const (
	Region  = "eu-west-2"
	Account = "111122223333"
)

// local-kms keeps its region and account in package variables: set once.
var setGlobals sync.Once

// Server is a running local-kms.
type Server struct {
	// Endpoint is http://127.0.0.1:PORT.
	Endpoint string
	// Dir holds the LevelDB store.
	Dir string

	t      testing.TB
	addr   string
	log    *logrus.Logger
	mu     sync.Mutex
	db     *data.Database
	server *http.Server
	done   chan struct{}
	hang   atomic.Bool
	fail   atomic.Bool
	calls  sync.Map // method → *atomic.Int64
	conns  atomic.Int64
}

// Start serves local-kms on a free loopback port until the test ends. It
// sets AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to dummy values for the
// test, so the default credential chain never looks further (no instance
// role, no shared files), and AWS_REGION to Region.
func Start(t testing.TB) *Server {
	t.Helper()
	testutil.UsesComponent(t, "local-kms")
	if st, ok := t.(interface{ Setenv(string, string) }); ok {
		st.Setenv("AWS_ACCESS_KEY_ID", "AKIDKMSTEST")
		st.Setenv("AWS_SECRET_ACCESS_KEY", "kmstest-not-a-secret")
		st.Setenv("AWS_REGION", Region)
		st.Setenv("AWS_EC2_METADATA_DISABLED", "true")
		st.Setenv("AWS_CONFIG_FILE", "/dev/null")
		st.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	}
	setGlobals.Do(func() {
		lkconfig.AWSRegion = Region
		lkconfig.AWSAccountId = Account
	})
	log := logrus.New()
	log.SetOutput(io.Discard)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("kmstest: %v", err)
	}
	s := &Server{t: t, Dir: t.TempDir(), addr: l.Addr().String(), log: log}
	s.Endpoint = "http://" + s.addr
	s.serve(l)
	t.Cleanup(s.Stop)
	return s
}

// serve opens the store and serves l.
func (s *Server) serve(l net.Listener) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.db = data.NewDatabase(s.Dir)
	db := s.db
	s.server = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.handle(w, r, db)
		}),
		ConnState: func(_ net.Conn, state http.ConnState) {
			switch state {
			case http.StateNew:
				s.conns.Add(1)
			case http.StateClosed, http.StateHijacked:
				s.conns.Add(-1)
			}
		},
	}
	s.done = make(chan struct{})
	srv, done := s.server, s.done
	go func() {
		defer close(done)
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.t.Errorf("kmstest: serve: %v", err)
		}
	}()
}

// handle dispatches a request as local-kms's server does
// (X-Amz-Target: TrentService.METHOD), logging to nowhere.
func (s *Server) handle(w http.ResponseWriter, r *http.Request, db *data.Database) {
	_, method, _ := strings.Cut(r.Header.Get("X-Amz-Target"), ".")
	n, _ := s.calls.LoadOrStore(method, new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
	if s.fail.Load() {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, `{"__type":"KMSInternalException","message":"kmstest: failing on purpose"}`)
		return
	}
	if s.hang.Load() {
		<-r.Context().Done() // the client gave up, or Stop closed the connection
		return
	}
	if r.Method != http.MethodPost || method == "" {
		http.Error(w, "kmstest: not a KMS request", http.StatusBadRequest)
		return
	}
	h := handler.NewRequestHandler(r, s.log, db)
	m := reflect.ValueOf(h).MethodByName(method)
	if !m.IsValid() {
		http.Error(w, "kmstest: "+method+" is not implemented", http.StatusNotImplemented)
		return
	}
	resp := m.Call(nil)[0].Interface().(handler.Response)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(resp.Code)
	io.WriteString(w, resp.Body)
}

// Stop closes every connection and the store: calls then fail with
// "connection refused", as when KMS is unreachable. Stopping twice is fine.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.server == nil {
		return
	}
	s.server.Close()
	<-s.done
	s.db.Close()
	s.server, s.db = nil, nil
}

// Hang makes the server accept requests and never answer them (hang is
// true) or answer again (false): a key service that is overloaded or cut
// off behind a load balancer.
func (s *Server) Hang(hang bool) { s.hang.Store(hang) }

// Fail makes the server answer every request with HTTP 500
// KMSInternalException (fail is true), which the SDK's own retryer would
// retry, or answer normally again (false).
func (s *Server) Fail(fail bool) { s.fail.Store(fail) }

// Calls returns how many requests for method (such as "Sign") the server
// has received.
func (s *Server) Calls(method string) int64 {
	n, ok := s.calls.Load(method)
	if !ok {
		return 0
	}
	return n.(*atomic.Int64).Load()
}

// OpenConns returns how many client connections are open.
func (s *Server) OpenConns() int64 { return s.conns.Load() }

// Restart serves again on the same port, with the same keys.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	l, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Fatalf("kmstest: listening on %s again: %v", s.addr, err)
	}
	s.serve(l)
}

// Client returns a KMS client for the server, with dummy credentials. It
// keeps no connection open, so OpenConns counts only the code under test.
func (s *Server) Client() *kms.Client {
	return kms.New(kms.Options{
		HTTPClient:   &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
		Region:       Region,
		BaseEndpoint: aws.String(s.Endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDKMSTEST", "kmstest-not-a-secret", ""),
	})
}

// CreateKey creates a signing key (KeyUsage SIGN_VERIFY) of keySpec, such
// as "ECC_NIST_P256" or "RSA_2048", and returns its key id.
func (s *Server) CreateKey(t testing.TB, keySpec string) string {
	t.Helper()
	return s.CreateKeyUsage(t, keySpec, types.KeyUsageTypeSignVerify)
}

// CreateKeyUsage creates a key of keySpec for usage and returns its key id.
func (s *Server) CreateKeyUsage(t testing.TB, keySpec string, usage types.KeyUsageType) string {
	t.Helper()
	out, err := s.Client().CreateKey(context.Background(), &kms.CreateKeyInput{
		KeySpec:  types.KeySpec(keySpec),
		KeyUsage: usage,
	})
	if err != nil {
		t.Fatalf("kmstest: creating a %s key: %v", keySpec, err)
	}
	return aws.ToString(out.KeyMetadata.KeyId)
}

// CreateAlias points alias ("alias/NAME") at the key keyID.
func (s *Server) CreateAlias(t testing.TB, alias, keyID string) {
	t.Helper()
	_, err := s.Client().CreateAlias(context.Background(), &kms.CreateAliasInput{
		AliasName:   aws.String(alias),
		TargetKeyId: aws.String(keyID),
	})
	if err != nil {
		t.Fatalf("kmstest: creating %s: %v", alias, err)
	}
}

// ARN returns the ARN of the key keyID.
func ARN(keyID string) string {
	return "arn:aws:kms:" + Region + ":" + Account + ":key/" + keyID
}

// Ref returns the awskms: reference of key (a key id, ARN or alias) on
// this server.
func (s *Server) Ref(key string) string {
	q := url.Values{"region": {Region}, "endpoint": {s.Endpoint}}
	return "awskms:///" + key + "?" + q.Encode()
}
