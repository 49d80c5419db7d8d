package token

import (
	"context"
	"crypto/sha256"
	"errors"
	"sync"
	"time"
)

// probeInterval is the least time between two probe signatures that
// NotReady makes while the key service is failing.
const probeInterval = 5 * time.Second

// keyHealth remembers how the last signature by a key service went, for
// /readyz. It is safe for concurrent use.
type keyHealth struct {
	mu        sync.Mutex
	failing   bool
	since     time.Time // when the current failure began
	lastErr   error
	lastProbe time.Time
}

// record notes the outcome of a signature made at now.
func (h *keyHealth) record(err error, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case err == nil:
		h.failing, h.lastErr = false, nil
	case !h.failing:
		h.failing, h.since, h.lastErr = true, now, err
	default:
		h.lastErr = err
	}
}

// state returns whether signing is failing, since when and why, and
// whether a probe is due at now (marking it as made when it is).
func (h *keyHealth) state(now time.Time) (failing bool, since time.Time, last error, probe bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failing && now.Sub(h.lastProbe) >= probeInterval {
		h.lastProbe, probe = now, true
	}
	return h.failing, h.since, h.lastErr, probe
}

// probeMessage is what a probe signature signs: a fixed digest that is not
// the hash of any token (a token's signing input starts with its header).
var probeMessage = []byte("gatehouse key service probe")

// NotReady says why the signer cannot issue tokens ("" when it can) and
// gives the error behind it, for the log. A key file always can. For a key
// held by a key service it reports the failure of the last signature; while
// that lasts it makes a probe signature, at most every 5 seconds, so that
// /readyz recovers without waiting for a token request.
func (s *Signer) NotReady(ctx context.Context) (string, error) {
	if s.ext == nil {
		return "", nil
	}
	failing, since, last, probe := s.health.state(s.now())
	if !failing {
		return "", nil
	}
	if probe {
		var buf [sha256.Size]byte
		_, err := s.sign(ctx, buf[:0], probeMessage)
		s.health.record(err, s.now())
		if err == nil {
			return "", nil
		}
		last = err
	}
	return "signing key " + s.ext.name + " not answering since " + since.UTC().Format(time.RFC3339), last
}

// Close releases the clients or sessions of keys held by a key service
// (the signing key and next_key). Tokens cannot be issued afterwards. Close
// does nothing for key files.
func (s *Signer) Close() error {
	if s == nil {
		return nil
	}
	return errors.Join(s.ext.Close(), s.nextExt.Close())
}

// KeyKind returns "file" for a key read from a PEM file, or the scheme of
// the key service that holds it: "awskms" or "pkcs11".
func (s *Signer) KeyKind() string {
	if s.ext == nil {
		return "file"
	}
	return s.ext.kind
}
