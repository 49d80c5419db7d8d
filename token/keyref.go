package token

import (
	"cmp"
	"context"
	"crypto"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrSignerUnavailable is wrapped by the errors of Issue when the key
// service that holds the signing key (a KMS or an HSM) did not sign within
// the deadline and the retries: the request may succeed later. Check it with
// errors.Is.
var ErrSignerUnavailable = errors.New("token: signing key service unavailable")

// errKeyRefused marks an error of a key service that refuses to sign with
// the key (disabled, deleted, access denied): trying again cannot help, so
// signRemote does not. Openers wrap such errors with it.
var errKeyRefused = errors.New("the key service refuses to sign with the key")

// Defaults for a key held outside the process.
const (
	// DefaultKeyTimeout bounds one signing call to a key service.
	DefaultKeyTimeout = 2 * time.Second
	// DefaultKeyRetries is how many times a failed call is tried again.
	DefaultKeyRetries = 2
	// maxKeyRetries bounds key_retries.
	maxKeyRetries = 5
	// openTimeout bounds opening a key reference (connecting, fetching the
	// public key) when the configuration is loaded.
	openTimeout = 15 * time.Second
)

// contextSigner is a crypto.Signer whose signing call can be bounded by a
// context: the KMS client honours it; other external keys are bounded by
// running the call in a goroutine and no longer waiting for it.
type contextSigner interface {
	crypto.Signer
	SignContext(ctx context.Context, digest []byte, opts crypto.SignerOpts) ([]byte, error)
}

// externalKey is a signing key held outside the process: the private key
// never enters Gatehouse's memory; only its public half and a handle do.
type externalKey struct {
	// signer answers Public without a call; Sign asks the key service.
	signer crypto.Signer
	// kind is the reference's scheme: "awskms" or "pkcs11".
	kind string
	// name describes the key in logs and /readyz, without any secret.
	name string
	// close releases the client or session; nil when there is nothing.
	close func() error
	// slots bounds the calls of a signer without SignContext that are in
	// progress, those given up on included: a hung key service holds at
	// most cap(slots) goroutines. Set by openExternalKey.
	slots chan struct{}
	// closeWait replaces closeTimeout when set (tests).
	closeWait time.Duration
}

// maxPendingCalls is how many signing calls that cannot be cancelled may
// be in progress at once for one key.
const maxPendingCalls = 64

// keyOpener opens the key a reference names. ref is the whole reference,
// scheme included. It must honour ctx for every call it makes.
type keyOpener func(ctx context.Context, ref string) (*externalKey, error)

// keyOpeners maps a key reference's scheme to what opens it. Adding a key
// service is one file and one line here.
var keyOpeners = map[string]keyOpener{
	"awskms": openAWSKMS,
	"pkcs11": openPKCS11,
}

// keyScheme returns the scheme of a key reference ("awskms", "pkcs11"), or
// "" when ref is a file path. A path never starts with one of the schemes
// followed by a colon, so a key file named "awskms:x" must be given as
// "./awskms:x".
func keyScheme(ref string) string {
	scheme, _, ok := strings.Cut(ref, ":")
	if !ok {
		return ""
	}
	if _, known := keyOpeners[scheme]; known {
		return scheme
	}
	return ""
}

// IsKeyReference reports whether a token.key value names a key held by a
// key service (awskms:…, pkcs11:…) rather than a PEM file.
func IsKeyReference(key string) bool { return keyScheme(key) != "" }

// openExternalKey opens a key reference, bounded by openTimeout, and checks
// that its type is one registries can verify.
func openExternalKey(ref string) (*externalKey, error) {
	open := keyOpeners[keyScheme(ref)]
	ctx, cancel := context.WithTimeout(context.Background(), openTimeout)
	defer cancel()
	k, err := open(ctx, ref)
	if err != nil {
		return nil, err
	}
	if _, err := algorithmOf(k.signer.Public()); err != nil {
		_ = k.Close()
		return nil, fmt.Errorf("token: key %s: %w", k.name, err)
	}
	if _, ok := k.signer.(contextSigner); !ok {
		k.slots = make(chan struct{}, maxPendingCalls)
	}
	return k, nil
}

// closeTimeout bounds how long Close waits for a key service's client or
// session to be released: a PKCS #11 module waits for its sessions, which a
// hung HSM may never return, and a shutdown must not wait with it.
const closeTimeout = 5 * time.Second

// Close releases the key's client or session, waiting at most closeTimeout
// (closeWait in tests); a release that takes longer goes on by itself.
func (k *externalKey) Close() error {
	if k == nil || k.close == nil {
		return nil
	}
	wait := cmp.Or(k.closeWait, closeTimeout)
	done := make(chan error, 1)
	go func() { done <- k.close() }()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("token: key %s: not released after %s; left to finish on its own", k.name, wait)
	}
}

// signDigest asks the key service to sign digest once, within ctx.
func (k *externalKey) signDigest(ctx context.Context, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if cs, ok := k.signer.(contextSigner); ok {
		return cs.SignContext(ctx, digest, opts)
	}
	type result struct {
		sig []byte
		err error
	}
	if k.slots != nil {
		select {
		case k.slots <- struct{}{}:
		case <-ctx.Done():
			return nil, fmt.Errorf("%d signing calls still in progress: %w", cap(k.slots), ctx.Err())
		}
	}
	done := make(chan result, 1) // buffered: a late answer is dropped, not blocked on
	go func() {
		sig, err := k.signer.Sign(nil, digest, opts)
		if k.slots != nil {
			<-k.slots
		}
		done <- result{sig, err}
	}()
	select {
	case r := <-done:
		return r.sig, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// remotePolicy is how calls to an external key are bounded.
type remotePolicy struct {
	timeout time.Duration // per call
	retries int           // further calls after a failed one
	backoff time.Duration // before the first retry; doubles
}

// signRemote signs digest with k under policy p: each call has its own
// deadline (never past ctx's), failed calls are retried with a doubling
// pause, and the final failure wraps ErrSignerUnavailable. An error marked
// errKeyRefused is not retried.
func signRemote(ctx context.Context, k *externalKey, p remotePolicy, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	var last error
	pause := p.backoff
	for attempt := 0; attempt <= p.retries; attempt++ {
		if attempt > 0 {
			t := time.NewTimer(pause)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, fmt.Errorf("%w: %s: %w (after %d calls; last: %w)", ErrSignerUnavailable, k.name, ctx.Err(), attempt, last)
			case <-t.C:
			}
			pause *= 2
		}
		callCtx, cancel := context.WithTimeout(ctx, p.timeout)
		sig, err := k.signDigest(callCtx, digest, opts)
		cancel()
		if err == nil {
			return sig, nil
		}
		last = err
		if ctx.Err() != nil || errors.Is(err, errKeyRefused) {
			break
		}
	}
	return nil, fmt.Errorf("%w: %s: %w", ErrSignerUnavailable, k.name, last)
}
