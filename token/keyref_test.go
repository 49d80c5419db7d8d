package token

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// flakyKey is a key service stand-in: a key in memory whose Sign fails,
// or hangs until the test ends, while told to.
type flakyKey struct {
	crypto.Signer
	calls    atomic.Int32
	failures atomic.Int32 // the next calls that fail
	hang     atomic.Bool  // calls block until release is closed
	release  chan struct{}
	deadline atomic.Value // time.Duration left on the ctx of the last SignContext
}

var errFlaky = errors.New("key service: connection refused")

func newFlakyKey(t *testing.T, kind string) *flakyKey {
	k := &flakyKey{Signer: testKey(t, kind), release: make(chan struct{})}
	t.Cleanup(func() { close(k.release) })
	return k
}

func (k *flakyKey) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	k.calls.Add(1)
	if k.hang.Load() {
		<-k.release
		return nil, errFlaky
	}
	if k.failures.Add(-1) >= 0 {
		return nil, errFlaky
	}
	k.failures.Store(0)
	return k.Signer.Sign(r, digest, opts)
}

// ctxKey is a flakyKey that offers SignContext and honours its deadline.
type ctxKey struct{ *flakyKey }

func (k ctxKey) SignContext(ctx context.Context, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if d, ok := ctx.Deadline(); ok {
		k.deadline.Store(time.Until(d))
	}
	if k.hang.Load() {
		k.calls.Add(1)
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return k.Sign(nil, digest, opts)
}

var _ contextSigner = ctxKey{}

// externalSigner builds a Signer whose key is held by the stand-in key
// service k, as NewSigner does for a key reference.
func externalSigner(t *testing.T, k crypto.Signer, policy remotePolicy, now func() time.Time) *Signer {
	t.Helper()
	var closed atomic.Bool
	ext := &externalKey{signer: k, kind: "test", name: "test:key-1", close: func() error {
		if closed.Swap(true) {
			t.Error("key closed twice")
		}
		return nil
	}}
	c := &Config{Issuer: "test issuer", Expiration: 900, Key: "test:key-1"}
	s := &Signer{now: now, log: slog.New(slog.DiscardHandler), ext: ext}
	kp := &keyPair{key: k, certs: []*x509.Certificate{selfSigned(t, k)}, ext: ext}
	if err := s.init(c, kp); err != nil {
		t.Fatal(err)
	}
	s.sign = newSignFunc(k, ext, policy, s.alg)
	t.Cleanup(func() {
		if err := s.Close(); err != nil || !closed.Load() {
			t.Errorf("Close = %v, closed %v", err, closed.Load())
		}
	})
	return s
}

// reset forgets the calls made so far.
func (k *flakyKey) reset() { k.calls.Store(0) }

var fastPolicy = remotePolicy{timeout: 50 * time.Millisecond, retries: 2, backoff: time.Millisecond}

func TestExternalKeySignsVerifiableTokens(t *testing.T) {
	for _, kind := range []string{"p256", "p384", "p521", "rsa2048"} {
		t.Run(kind, func(t *testing.T) {
			k := newFlakyKey(t, kind)
			s := externalSigner(t, ctxKey{k}, fastPolicy, fixedClock)
			k.reset()
			tok, err := s.Issue("alice", "registry", []Access{{Type: "repository", Name: "alice/app", Actions: []string{"pull"}}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := verify(s, tok.Raw); err != nil {
				t.Fatalf("token does not verify: %v", err)
			}
			if n := k.calls.Load(); n != 1 {
				t.Errorf("key service called %d times for one token, want 1", n)
			}
			if got := s.KeyKind(); got != "test" {
				t.Errorf("KeyKind = %q", got)
			}
		})
	}
}

func TestSignRemoteBoundsAndRetries(t *testing.T) {
	tests := []struct {
		name      string
		withCtx   bool
		failures  int32
		hang      bool
		policy    remotePolicy
		wantErr   bool
		wantCalls int32
	}{
		{name: "answers at once", policy: fastPolicy, wantCalls: 1},
		{name: "two failures are retried", failures: 2, policy: fastPolicy, wantCalls: 3},
		{name: "failures beyond the retries", failures: 3, policy: fastPolicy, wantErr: true, wantCalls: 3},
		{name: "no retries", failures: 1, policy: remotePolicy{timeout: time.Second}, wantErr: true, wantCalls: 1},
		{name: "a hung call without context is abandoned", hang: true, policy: fastPolicy, wantErr: true, wantCalls: 3},
		{name: "a hung call with context is cancelled", withCtx: true, hang: true, policy: fastPolicy, wantErr: true, wantCalls: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newFlakyKey(t, "p256")
			var signer crypto.Signer = k
			if tt.withCtx {
				signer = ctxKey{k}
			}
			s := externalSigner(t, signer, tt.policy, fixedClock)
			k.reset()
			k.failures.Store(tt.failures)
			k.hang.Store(tt.hang)
			tok, err := s.IssueContext(context.Background(), "alice", "registry", nil)
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("IssueContext error = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				if !errors.Is(err, ErrSignerUnavailable) {
					t.Errorf("error %v does not wrap ErrSignerUnavailable", err)
				}
				if !strings.Contains(err.Error(), "test:key-1") {
					t.Errorf("error %q does not name the key", err)
				}
			} else if _, err := verify(s, tok.Raw); err != nil {
				t.Errorf("token does not verify: %v", err)
			}
			if got := k.calls.Load(); got != tt.wantCalls {
				t.Errorf("key service called %d times, want %d", got, tt.wantCalls)
			}
		})
	}
}

func TestSignRemoteDeadlines(t *testing.T) {
	k := newFlakyKey(t, "p256")
	s := externalSigner(t, ctxKey{k}, remotePolicy{timeout: time.Hour, retries: 5, backoff: time.Millisecond}, fixedClock)

	// Each call's deadline is the smaller of key_timeout and the request's.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := s.IssueContext(ctx, "alice", "registry", nil); err != nil {
		t.Fatal(err)
	}
	if d := k.deadline.Load().(time.Duration); d > time.Minute {
		t.Errorf("call deadline %v is past the request's (1m)", d)
	}

	// A request that ends stops the retries: no call after it.
	k.reset()
	k.hang.Store(true)
	ctx, cancel = context.WithCancel(context.Background())
	go func() {
		for k.calls.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	_, err := s.IssueContext(ctx, "alice", "registry", nil)
	if !errors.Is(err, ErrSignerUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v, want ErrSignerUnavailable and context.Canceled", err)
	}
	if n := k.calls.Load(); n != 1 {
		t.Errorf("key service called %d times after the request ended, want 1", n)
	}
}

func TestNotReadyFollowsTheKeyService(t *testing.T) {
	var mu sync.Mutex
	now := testNow
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	k := newFlakyKey(t, "p256")
	s := externalSigner(t, ctxKey{k}, remotePolicy{timeout: time.Second}, clock)
	ctx := context.Background()
	if why, err := s.NotReady(ctx); why != "" || err != nil {
		t.Fatalf("fresh signer not ready: %q, %v", why, err)
	}

	k.failures.Store(1 << 20)
	if _, err := s.Issue("alice", "registry", nil); err == nil {
		t.Fatal("Issue succeeded with the key service down")
	}
	k.reset()
	why, err := s.NotReady(ctx)
	if !strings.Contains(why, "test:key-1") || !strings.Contains(why, testNow.Format(time.RFC3339)) || !errors.Is(err, errFlaky) {
		t.Errorf("NotReady = %q, %v; want the key, the time the failure began and its error", why, err)
	}
	if k.calls.Load() != 1 {
		t.Errorf("NotReady made %d probes, want 1", k.calls.Load())
	}
	// Within probeInterval: the same answer, no further call.
	advance(probeInterval / 2)
	if why, _ := s.NotReady(ctx); why == "" || k.calls.Load() != 1 {
		t.Errorf("NotReady = %q after %d calls; want still failing and no new probe", why, k.calls.Load())
	}

	k.failures.Store(0)
	advance(probeInterval)
	if why, err := s.NotReady(ctx); why != "" || err != nil {
		t.Errorf("NotReady after recovery = %q, %v", why, err)
	}
	if k.calls.Load() != 2 {
		t.Errorf("recovery seen after %d calls, want 2 (one probe)", k.calls.Load())
	}
}

func TestKeySchemes(t *testing.T) {
	tests := []struct {
		ref, want string
	}{
		{"awskms:///alias/gatehouse?region=eu-west-1", "awskms"},
		{"pkcs11:token=gatehouse;object=signer?module-path=/usr/lib/softhsm/libsofthsm2.so", "pkcs11"},
		{"/ssl/token.key", ""},
		{"./awskms:key", ""},
		{"token.key", ""},
		{"file:/ssl/token.key", ""},
		{"AWSKMS:///k", ""},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			if got := keyScheme(tt.ref); got != tt.want {
				t.Errorf("keyScheme(%q) = %q, want %q", tt.ref, got, tt.want)
			}
			if got := IsKeyReference(tt.ref); got != (tt.want != "") {
				t.Errorf("IsKeyReference(%q) = %v", tt.ref, got)
			}
		})
	}
}

func TestFileKeyIsAlwaysReady(t *testing.T) {
	s := testSigner(t, testKey(t, "p256"), nil)
	if why, err := s.NotReady(context.Background()); why != "" || err != nil || s.KeyKind() != "file" || s.Close() != nil {
		t.Errorf("file key: NotReady = %q, %v; KeyKind = %q", why, err, s.KeyKind())
	}
}

func TestHungCallsAreBounded(t *testing.T) {
	k := newFlakyKey(t, "p256")
	s := externalSigner(t, k, remotePolicy{timeout: 20 * time.Millisecond}, fixedClock)
	s.ext.slots = make(chan struct{}, 2)
	k.reset()
	k.hang.Store(true)
	for i := range 5 {
		if _, err := s.Issue("alice", "registry", nil); !errors.Is(err, ErrSignerUnavailable) {
			t.Fatalf("request %d: error %v, want ErrSignerUnavailable", i, err)
		}
	}
	if n := k.calls.Load(); n != 2 {
		t.Errorf("%d calls started against a hung key service, want 2 (the bound)", n)
	}
}

func TestCloseDoesNotWaitForAHungService(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	k := &externalKey{name: "test:hung", closeWait: 20 * time.Millisecond, close: func() error {
		<-release
		return nil
	}}
	err := k.Close()
	if err == nil || !strings.Contains(err.Error(), "test:hung") {
		t.Fatalf("Close of a hung key service = %v, want an error naming the key", err)
	}
	ok := &externalKey{name: "test:ok", close: func() error { return errFlaky }}
	if err := ok.Close(); !errors.Is(err, errFlaky) {
		t.Errorf("Close = %v, want the release's own error", err)
	}
}
