package authn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse/gatehouse/internal/cfgerr"
)

// errUnknownKID is the verdict for a token signed with a key the issuer's
// current set does not hold.
var errUnknownKID = errors.New("unknown kid")

// keySet holds one issuer's JSON Web Key Set. It fetches the set on first
// use and again when the keys are older than the freshness, or when a token
// names a kid the set lacks, at most once per minRefresh (a flood of
// made-up kids causes one fetch per interval, not one per token). When a
// fetch fails the keys of the last good one keep working until maxStale
// after it; a kid they lack is then ErrUnavailable (503), not a 401, since
// the issuer may have rotated while it was unreachable. A static set
// (jwks_file) is never fetched.
type keySet struct {
	issuer     string
	jwksURI    string // "" until discovered (unless configured)
	discover   bool   // jwksURI comes from the issuer's discovery document
	client     *http.Client
	now        func() time.Time
	minRefresh time.Duration
	maxStale   time.Duration
	freshness  time.Duration
	static     bool

	mu        sync.Mutex
	keys      *jose.JSONWebKeySet
	fetchedAt time.Time // of the keys held
	triedAt   time.Time // of the last fetch, good or bad
	lastErr   error     // of the last fetch; nil after a good one
	flight    chan struct{}
	fetches   int // fetches made (tests)
}

// newKeySet builds the key set of w: a static one read from jwks_file now,
// or one fetched on use.
func newKeySet(w WorkloadIssuer, now func() time.Time) (*keySet, error) {
	k := &keySet{issuer: w.Issuer, jwksURI: w.JWKSURI, discover: w.JWKSURI == "", now: now,
		minRefresh: orDuration(w.JWKSMinRefresh, DefaultJWKSMinRefresh),
		maxStale:   orDuration(w.JWKSMaxStale, DefaultJWKSMaxStale),
		freshness:  DefaultWorkloadFreshness}
	if w.JWKSFile != "" {
		data, err := os.ReadFile(w.JWKSFile)
		if err != nil {
			return nil, cfgerr.At(err, "jwks_file")
		}
		set, err := parseKeySet(data)
		if err != nil {
			return nil, cfgerr.At(fmt.Errorf("%s: %w", w.JWKSFile, err), "jwks_file")
		}
		k.keys, k.static, k.discover = set, true, false
		return k, nil
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = http.ProxyFromEnvironment
	if w.CAFile != "" {
		pem, err := os.ReadFile(w.CAFile)
		if err != nil {
			return nil, cfgerr.At(err, "ca_file")
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, cfgerr.At(fmt.Errorf("%s holds no PEM certificate", w.CAFile), "ca_file")
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	k.client = &http.Client{Transport: tr, Timeout: workloadFetchTimeout,
		CheckRedirect: func(req *http.Request, _ []*http.Request) error {
			if req.URL.Scheme != "https" {
				return errors.New("redirect away from https")
			}
			return nil
		}}
	return k, nil
}

func orDuration(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// parseKeySet decodes a JWKS document, keeping only public signing keys.
func parseKeySet(data []byte) (*jose.JSONWebKeySet, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("not a JSON Web Key Set: %w", err)
	}
	out := &jose.JSONWebKeySet{}
	for _, key := range set.Keys {
		if key.IsPublic() && key.Valid() && (key.Use == "" || key.Use == "sig") {
			out.Keys = append(out.Keys, key)
		}
	}
	if len(out.Keys) == 0 {
		return nil, errors.New("holds no public signing key")
	}
	if len(out.Keys) > workloadMaxKeys {
		return nil, fmt.Errorf("holds %d keys, more than %d", len(out.Keys), workloadMaxKeys)
	}
	return out, nil
}

// candidates returns the keys that may have signed a token with kid: the
// key with that kid, or, without a kid, the set's only key. A kid the set lacks
// makes it fetch again when it may; errUnknownKID when it still lacks it,
// ErrUnavailable when it could not fetch and the kid is not held.
func (k *keySet) candidates(ctx context.Context, kid string) ([]jose.JSONWebKey, error) {
	if k.static {
		return pick(k.keys, kid)
	}
	k.mu.Lock()
	now := k.now()
	stale := k.keys == nil || now.Sub(k.fetchedAt) >= k.freshness
	keys, err := pick(k.keys, kid)
	wantFetch := (stale || errors.Is(err, errUnknownKID)) && k.mayFetch(now)
	k.mu.Unlock()
	if wantFetch {
		k.refresh(ctx)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	now = k.now()
	if k.keys == nil || now.Sub(k.fetchedAt) > k.maxStale {
		return nil, fmt.Errorf("%w: workload_identity: no usable keys for %s: %w", ErrUnavailable, k.issuer, orErr(k.lastErr))
	}
	keys, err = pick(k.keys, kid)
	if errors.Is(err, errUnknownKID) && k.lastErr != nil {
		return nil, fmt.Errorf("%w: workload_identity: kid %q not among %s's keys, which could not be fetched again: %w", ErrUnavailable, kid, k.issuer, k.lastErr)
	}
	return keys, err
}

func orErr(err error) error {
	if err == nil {
		return errors.New("the key set is too old")
	}
	return err
}

// mayFetch reports whether a fetch may start at now: at most one per
// minRefresh, whatever its outcome, so neither made-up kids nor an issuer
// that is down cause a fetch per request. Called with k.mu held.
func (k *keySet) mayFetch(now time.Time) bool {
	return k.triedAt.IsZero() || now.Sub(k.triedAt) >= k.minRefresh
}

// pick returns the keys of set that may verify a token with kid.
func pick(set *jose.JSONWebKeySet, kid string) ([]jose.JSONWebKey, error) {
	if set == nil {
		return nil, errUnknownKID
	}
	if kid == "" {
		if len(set.Keys) > 1 {
			// Not one verification per key of the set for each token.
			return nil, fmt.Errorf("%w: the token names no kid and the issuer has %d keys", errUnknownKID, len(set.Keys))
		}
		return set.Keys, nil
	}
	if keys := set.Key(kid); len(keys) > 0 {
		return keys, nil
	}
	return nil, fmt.Errorf("%w %q", errUnknownKID, kid)
}

// refresh fetches the set once for all callers waiting at the same time;
// the fetch runs detached from ctx, so one caller giving up does not fail
// the others, and a caller waits only as long as its ctx allows.
func (k *keySet) refresh(ctx context.Context) {
	k.mu.Lock()
	f := k.flight
	if f == nil {
		if !k.mayFetch(k.now()) {
			k.mu.Unlock()
			return // another caller fetched a moment ago
		}
		f = make(chan struct{})
		k.flight = f
		go k.fetch(f)
	}
	k.mu.Unlock()
	select {
	case <-f:
	case <-ctx.Done():
	}
}

// fetch fetches the set (discovering its URL first when needed) and
// records the outcome.
func (k *keySet) fetch(done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), workloadFetchTimeout)
	defer cancel()
	set, uri, err := k.download(ctx)
	k.mu.Lock()
	k.triedAt, k.lastErr, k.flight = k.now(), err, nil
	k.fetches++
	if err == nil {
		k.keys, k.fetchedAt, k.jwksURI = set, k.triedAt, uri
	} else if k.discover {
		k.jwksURI = "" // discover again next time
	}
	k.mu.Unlock()
	close(done)
}

// download gets the discovery document when needed, then the key set.
func (k *keySet) download(ctx context.Context) (*jose.JSONWebKeySet, string, error) {
	k.mu.Lock()
	uri := k.jwksURI
	k.mu.Unlock()
	if uri == "" {
		var doc struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		body, err := k.get(ctx, strings.TrimSuffix(k.issuer, "/")+"/.well-known/openid-configuration")
		if err != nil {
			return nil, "", fmt.Errorf("discovery: %w", err)
		}
		if err := json.Unmarshal(body, &doc); err != nil {
			return nil, "", fmt.Errorf("discovery: %w", err)
		}
		if doc.Issuer != k.issuer {
			return nil, "", fmt.Errorf("discovery: the document names issuer %q, not %q", doc.Issuer, k.issuer)
		}
		if err := httpsURL(doc.JWKSURI); err != nil {
			return nil, "", fmt.Errorf("discovery: jwks_uri %w", err)
		}
		uri = doc.JWKSURI
	}
	body, err := k.get(ctx, uri)
	if err != nil {
		return nil, "", fmt.Errorf("jwks: %w", err)
	}
	set, err := parseKeySet(body)
	if err != nil {
		return nil, "", fmt.Errorf("jwks: %s: %w", uri, err)
	}
	return set, uri, nil
}

// get fetches a document of at most maxWorkloadDocumentBytes.
func (k *keySet) get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxWorkloadDocumentBytes+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if len(body) > maxWorkloadDocumentBytes {
		return nil, fmt.Errorf("GET %s: larger than %d bytes", url, maxWorkloadDocumentBytes)
	}
	return body, nil
}

// close releases idle connections.
func (k *keySet) close() {
	if k.client != nil {
		k.client.CloseIdleConnections()
	}
}
