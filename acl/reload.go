package acl

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/internal/cfgerr"
)

// DefaultCacheTTL is how often acl_mongo and acl_xorm reload when cache_ttl
// is not set.
const DefaultCacheTTL = time.Minute

// loadRetry bounds the wait between attempts while no ACL has been loaded
// yet, so a database that was down at startup is picked up soon.
const loadRetry = 5 * time.Second

// ErrNotLoaded is returned by the Decide of acl_mongo and acl_xorm while no
// load of their rules has succeeded yet; it wraps the reason of the last
// failure.
var ErrNotLoaded = errors.New("acl: rules not loaded yet")

// Clock is the time source of the reload loop; tests replace it.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// ruleDoc is one stored rule (a MongoDB document, a SQL row), checked and
// decoded.
type ruleDoc struct {
	seq  int64
	name string // "seq 20 (_id …)" for messages
	rule Rule
}

// loadFunc reads the stored rules. It returns a fingerprint of what it read,
// so that unchanged rules are not compiled again, and parse, which checks
// and decodes them into docs sorted by seq.
type loadFunc func(ctx context.Context) (digest [sha256.Size]byte, parse func() ([]ruleDoc, error), err error)

// reloader is the reload loop acl_mongo and acl_xorm share: it keeps the last
// ACL loaded, reloads it every ttl in the background, and leaves it in force
// when a load fails (database down, an invalid rule).
type reloader struct {
	section string // "acl_mongo", for logs and errors
	source  string // where the rules are read, WithPrevious compares it
	docs    string // what a stored rule is called in messages: "mongo: acl document"
	item    string // and in warnings: "document"
	load    loadFunc
	ttl     time.Duration
	clock   Clock
	logger  *slog.Logger

	cur      atomic.Pointer[snapshot]
	lastErr  atomic.Pointer[error]
	failures atomic.Uint64

	refreshMu sync.Mutex // serializes Refresh; guards digest
	digest    [sha256.Size]byte

	stop      context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// snapshot is one successful load.
type snapshot struct {
	acl  *ACL
	seqs []int64 // seq of each rule, in order
	at   time.Time
}

// SeqDecision is a Decision of acl_mongo or acl_xorm with the deciding
// rule's seq (meaningful when Matched).
type SeqDecision struct {
	Decision
	Seq int64
}

// MongoDecision is the decision of acl_mongo.
type MongoDecision = SeqDecision

// start sets the defaults, loads once and starts the loop. A failed first
// load is logged, and Decide answers ErrNotLoaded until a later load
// succeeds.
func (r *reloader) start() {
	if r.ttl == 0 {
		r.ttl = DefaultCacheTTL
	}
	r.logger = r.logger.With("authorizer", r.section)
	r.done = make(chan struct{})
	ctx, stop := context.WithCancel(context.Background())
	r.stop = stop
	r.reload(ctx)
	go r.run(ctx)
}

// inherit starts from the ACL prev holds when both read the same source.
func (r *reloader) inherit(prev *reloader) {
	if prev != nil && prev.source == r.source {
		r.cur.Store(prev.cur.Load()) // immutable; digest left zero, so the next load compiles
		r.failures.Store(prev.failures.Load())
	}
}

// run reloads every ttl until Close.
func (r *reloader) run(ctx context.Context) {
	defer close(r.done)
	for {
		wait := r.ttl
		if r.cur.Load() == nil {
			wait = min(wait, loadRetry)
		}
		select {
		case <-ctx.Done():
			return
		case <-r.clock.After(wait):
		}
		r.reload(ctx)
	}
}

// reload runs Refresh and logs its failure.
func (r *reloader) reload(ctx context.Context) {
	err := r.Refresh(ctx)
	if err == nil || ctx.Err() != nil {
		return
	}
	if s := r.cur.Load(); s != nil {
		r.logger.Error(r.section+": reload failed; the ACL loaded before stays in force",
			"loaded_at", s.at, "age", r.clock.Now().Sub(s.at).Round(time.Second), "error", err)
	} else {
		r.logger.Error(r.section+": load failed; requests that the static acl does not decide get 503 until a load succeeds", "error", err)
	}
}

// Refresh loads the rules now, sorted by seq, and replaces the ACL if every
// rule is valid. On any failure the ACL in force stays, the failure is
// counted (LoadFailures) and the error, naming the bad rules, is returned.
// It honours ctx and the configured timeout.
func (r *reloader) Refresh(ctx context.Context) error {
	r.refreshMu.Lock()
	defer r.refreshMu.Unlock()
	err := r.refresh(ctx)
	if err != nil {
		r.lastErr.Store(&err)
		if ctx.Err() == nil {
			r.failures.Add(1)
		}
	} else {
		r.lastErr.Store(nil)
	}
	return err
}

func (r *reloader) refresh(ctx context.Context) error {
	digest, parse, err := r.load(ctx)
	if err != nil {
		return err
	}
	now := r.clock.Now()
	if s := r.cur.Load(); s != nil && digest == r.digest {
		r.cur.Store(&snapshot{acl: s.acl, seqs: s.seqs, at: now})
		return nil
	}
	docs, err := parse()
	if err != nil {
		return err
	}
	a, err := r.compile(docs)
	if err != nil {
		return err
	}
	s := &snapshot{acl: a, seqs: make([]int64, len(docs)), at: now}
	for i, d := range docs {
		s.seqs[i] = d.seq
	}
	// Compile's warnings name list indexes; log them with the seq instead.
	for _, w := range a.Warnings() {
		r.logger.Warn(r.section + ": " + renameIndex(w, r.item, s.seqs))
	}
	r.cur.Store(s)
	r.digest = digest
	r.logger.Info(r.section+": loaded", "rules", len(docs))
	return nil
}

// compile compiles the docs' rules in seq order. Compile's errors, placed at
// list indexes, are rewritten to name the stored rules.
func (r *reloader) compile(docs []ruleDoc, opts ...Option) (*ACL, error) {
	rules := make([]Rule, len(docs))
	for i := range docs {
		rules[i] = docs[i].rule
	}
	a, err := Compile(rules, opts...)
	if err == nil {
		return a, nil
	}
	var errs []error
	for _, e := range cfgerr.Flatten(err) {
		var ce *cfgerr.Error
		if errors.As(e, &ce) && len(ce.Path) > 0 {
			if i, convErr := strconv.Atoi(ce.Path[0]); convErr == nil && i >= 0 && i < len(docs) {
				msg := ce.Err.Error()
				if len(ce.Path) > 1 {
					msg = cfgerr.Key(ce.Path[1:]) + ": " + msg
				}
				errs = append(errs, fmt.Errorf("%s %s: %s", r.docs, docs[i].name, msg))
				continue
			}
		}
		errs = append(errs, fmt.Errorf("%s: %w", r.docs, e))
	}
	return nil, errors.Join(errs...)
}

// sortDocs sorts docs by seq and reports each duplicate seq, naming the
// rules with what (e.g. "mongo: acl documents").
func sortDocs(docs []ruleDoc, what string) []error {
	slices.SortStableFunc(docs, func(a, b ruleDoc) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})
	var errs []error
	for i := 1; i < len(docs); i++ {
		if docs[i].seq == docs[i-1].seq {
			errs = append(errs, fmt.Errorf("%s %s and %s: seq must be unique, or their order is undefined", what, docs[i-1].name, docs[i].name))
		}
	}
	return errs
}

// digestOf fingerprints the stored rules, so that unchanged rules are not
// compiled (nor their warnings logged) again on every reload.
func digestOf(items [][]byte) [sha256.Size]byte {
	h := sha256.New()
	var n [8]byte
	for _, r := range items {
		binary.BigEndian.PutUint64(n[:], uint64(len(r)))
		h.Write(n[:])
		h.Write(r)
	}
	var d [sha256.Size]byte
	h.Sum(d[:0])
	return d
}

var indexPrefix = regexp.MustCompile(`^acl\[(\d+)\]`)

// renameIndex rewrites a warning's leading "acl[i]" to "ITEM seq N".
func renameIndex(w, item string, seqs []int64) string {
	m := indexPrefix.FindStringSubmatch(w)
	if m == nil {
		return w
	}
	i, err := strconv.Atoi(m[1])
	if err != nil || i >= len(seqs) {
		return w
	}
	return item + " seq " + strconv.FormatInt(seqs[i], 10) + w[len(m[0]):]
}

// Decide decides req with the ACL in force. Before the first successful
// load it returns ErrNotLoaded, wrapping the last failure.
func (r *reloader) Decide(req *Request) (SeqDecision, error) {
	s := r.cur.Load()
	if s == nil {
		var reason error = errors.New("no load finished yet")
		if p := r.lastErr.Load(); p != nil {
			reason = *p
		}
		return SeqDecision{Decision: Decision{Rule: -1, Actions: []string{}}}, fmt.Errorf("%s: %w: %w", r.section, ErrNotLoaded, reason)
	}
	d := s.acl.Decide(req)
	sd := SeqDecision{Decision: d}
	if d.Matched && d.Rule >= 0 && d.Rule < len(s.seqs) {
		sd.Seq = s.seqs[d.Rule]
	}
	return sd, nil
}

// Len returns the number of rules in force (0 before the first load).
func (r *reloader) Len() int {
	if s := r.cur.Load(); s != nil {
		return s.acl.Len()
	}
	return 0
}

// LoadedAt returns when the ACL in force was last confirmed by a successful
// load; the zero time before the first.
func (r *reloader) LoadedAt() time.Time {
	if s := r.cur.Load(); s != nil {
		return s.at
	}
	return time.Time{}
}

// LoadFailures counts the loads that failed (database unreachable, an
// invalid rule) since the authorizer started, including those of the
// authorizer it took over from with WithPrevious.
func (r *reloader) LoadFailures() uint64 { return r.failures.Load() }

// shutdown stops the reload loop, waits for it, then runs closeConn. It is
// safe to call more than once.
func (r *reloader) shutdown(closeConn func() error) error {
	r.closeOnce.Do(func() {
		r.stop()
		<-r.done
		r.closeErr = closeConn()
	})
	return r.closeErr
}
