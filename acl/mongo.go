package acl

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongooptions "go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gatehouse/gatehouse/internal/cfgerr"
	"github.com/gatehouse/gatehouse/internal/mongoconn"
)

// DefaultCacheTTL is how often acl_mongo reloads when cache_ttl is not set.
const DefaultCacheTTL = time.Minute

// mongoRetry bounds the wait between attempts while no ACL has been loaded
// yet, so a database that was down at startup is picked up soon.
const mongoRetry = 5 * time.Second

// ErrNotLoaded is returned by (*Mongo).Decide while no load of the
// collection has succeeded yet; it wraps the reason of the last failure.
var ErrNotLoaded = errors.New("acl: acl_mongo not loaded yet")

// MongoConfig is the `acl_mongo:` section: ACL rules kept in a MongoDB
// collection, loaded whole, sorted by seq, and reloaded every cache_ttl.
//
//	acl_mongo:
//	  dial_info:
//	    addrs: ["mongo:27017"]
//	    timeout: "5s"          # each load
//	    database: docker_auth
//	  collection: acl
//	  cache_ttl: "1m"          # reload period; default 1m
//
// uri (with password_file) may replace dial_info, as in mongo_auth. Each
// document is {seq, match, actions, comment}, the static `acl:` entry plus
// a unique number giving its position; see docs/mongodb.md.
type MongoConfig struct {
	mongoconn.Config `yaml:",inline"`
	// CacheTTL is the reload period; 0 means DefaultCacheTTL.
	CacheTTL time.Duration `yaml:"cache_ttl"`
}

// Validate checks the section without I/O; problems are placed at their
// keys relative to the section.
func (c *MongoConfig) Validate() error {
	errs := []error{c.Config.Validate()}
	if c.CacheTTL < 0 {
		errs = append(errs, cfgerr.At(fmt.Errorf("must be positive, e.g. \"1m\", got %s", c.CacheTTL), "cache_ttl"))
	}
	return errors.Join(errs...)
}

// Clock is the time source of the reload loop; tests replace it.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// MongoOption configures NewMongo.
type MongoOption func(*Mongo)

// WithMongoLogger sets where loads and their failures are logged; the
// default discards.
func WithMongoLogger(l *slog.Logger) MongoOption {
	return func(m *Mongo) {
		if l != nil {
			m.logger = l
		}
	}
}

// WithClock sets the clock of the reload loop (tests).
func WithClock(c Clock) MongoOption { return func(m *Mongo) { m.clock = c } }

// WithPrevious starts from the ACL prev holds when both read the same
// collection (same hosts, database and collection name): a configuration
// reload while the database cannot be read keeps the last good ACL in
// force, as a failed reload of one configuration does, instead of
// answering 503 until a load succeeds. The first successful load replaces
// it. prev may be nil.
func WithPrevious(prev *Mongo) MongoOption {
	return func(m *Mongo) {
		if prev != nil && prev.conn.String() == m.conn.String() {
			m.cur.Store(prev.cur.Load()) // immutable; digest left zero, so the next load compiles
		}
	}
}

// Mongo is the acl_mongo authorizer: the last ACL loaded from the
// collection, reloaded in the background. An invalid collection (a bad
// document, a duplicate seq) and a database that is down leave the last
// good ACL in force. It owns its client and its goroutine; Close stops both.
type Mongo struct {
	conn   *mongoconn.Conn
	ttl    time.Duration
	clock  Clock
	logger *slog.Logger

	cur     atomic.Pointer[mongoSnapshot]
	lastErr atomic.Pointer[error]

	refreshMu sync.Mutex // serializes Refresh; guards digest
	digest    [sha256.Size]byte

	stop      context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

var _ io.Closer = (*Mongo)(nil)

// mongoSnapshot is one successful load.
type mongoSnapshot struct {
	acl  *ACL
	seqs []int64 // seq of each rule, in order
	at   time.Time
}

// MongoDecision is a Decision of the Mongo ACL with the deciding document's
// seq (meaningful when Matched).
type MongoDecision struct {
	Decision
	Seq int64
}

// NewMongo builds the client, loads the collection once (bounded by the
// timeout; a failure is logged, and Decide answers ErrNotLoaded until a
// later load succeeds) and starts the reload loop.
func NewMongo(cfg MongoConfig, opts ...MongoOption) (*Mongo, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	conn, err := mongoconn.Open(&cfg.Config)
	if err != nil {
		return nil, err
	}
	m := &Mongo{conn: conn, ttl: cfg.CacheTTL, clock: realClock{}, logger: slog.New(slog.DiscardHandler), done: make(chan struct{})}
	if m.ttl == 0 {
		m.ttl = DefaultCacheTTL
	}
	for _, o := range opts {
		o(m)
	}
	m.logger = m.logger.With("authorizer", "acl_mongo", "collection", conn.String())
	ctx, stop := context.WithCancel(context.Background())
	m.stop = stop
	m.reload(ctx)
	go m.run(ctx)
	return m, nil
}

// run reloads every cache_ttl until Close.
func (m *Mongo) run(ctx context.Context) {
	defer close(m.done)
	for {
		wait := m.ttl
		if m.cur.Load() == nil {
			wait = min(wait, mongoRetry)
		}
		select {
		case <-ctx.Done():
			return
		case <-m.clock.After(wait):
		}
		m.reload(ctx)
	}
}

// reload runs Refresh and logs its failure.
func (m *Mongo) reload(ctx context.Context) {
	err := m.Refresh(ctx)
	if err == nil || ctx.Err() != nil {
		return
	}
	if s := m.cur.Load(); s != nil {
		m.logger.Error("acl_mongo: reload failed; the ACL loaded before stays in force",
			"loaded_at", s.at, "age", m.clock.Now().Sub(s.at).Round(time.Second), "error", err)
	} else {
		m.logger.Error("acl_mongo: load failed; requests that the static acl does not decide get 503 until a load succeeds", "error", err)
	}
}

// Refresh loads the collection now, sorted by seq, and replaces the ACL if
// every document is valid. On any failure the ACL in force stays and the
// error, naming the bad documents, is returned. It honours ctx and the
// configured timeout.
func (m *Mongo) Refresh(ctx context.Context) error {
	m.refreshMu.Lock()
	defer m.refreshMu.Unlock()
	err := m.refresh(ctx)
	if err != nil {
		m.lastErr.Store(&err)
	} else {
		m.lastErr.Store(nil)
	}
	return err
}

func (m *Mongo) refresh(ctx context.Context) error {
	raws, err := m.fetch(ctx)
	if err != nil {
		return err
	}
	digest := digestOf(raws)
	now := m.clock.Now()
	if s := m.cur.Load(); s != nil && digest == m.digest {
		m.cur.Store(&mongoSnapshot{acl: s.acl, seqs: s.seqs, at: now})
		return nil
	}
	docs, err := parseMongoDocs(raws)
	if err != nil {
		return err
	}
	// Compile's warnings name list indexes; log them with the seq instead.
	a, err := compileMongoDocs(docs)
	if err != nil {
		return err
	}
	s := &mongoSnapshot{acl: a, seqs: make([]int64, len(docs)), at: now}
	for i, d := range docs {
		s.seqs[i] = d.seq
	}
	for _, w := range a.Warnings() {
		m.logger.Warn("acl_mongo: " + renameIndex(w, s.seqs))
	}
	m.cur.Store(s)
	m.digest = digest
	m.logger.Info("acl_mongo: loaded", "rules", len(docs))
	return nil
}

// fetch reads every document, sorted by seq by the server.
func (m *Mongo) fetch(ctx context.Context) ([]bson.Raw, error) {
	ctx, cancel := m.conn.WithTimeout(ctx)
	defer cancel()
	cur, err := m.conn.Collection.Find(ctx, bson.D{}, mongooptions.Find().SetSort(bson.D{{Key: "seq", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("mongo: acl: find: %w", err)
	}
	defer func() { _ = cur.Close(context.WithoutCancel(ctx)) }()
	var raws []bson.Raw
	for cur.Next(ctx) {
		raws = append(raws, append(bson.Raw(nil), cur.Current...))
	}
	if err := cur.Err(); err != nil {
		return nil, fmt.Errorf("mongo: acl: read: %w", err)
	}
	return raws, nil
}

// digestOf fingerprints the documents, so that an unchanged collection is
// not compiled (nor its warnings logged) again on every reload.
func digestOf(raws []bson.Raw) [sha256.Size]byte {
	h := sha256.New()
	var n [8]byte
	for _, r := range raws {
		binary.BigEndian.PutUint64(n[:], uint64(len(r)))
		h.Write(n[:])
		h.Write(r)
	}
	var d [sha256.Size]byte
	h.Sum(d[:0])
	return d
}

var indexPrefix = regexp.MustCompile(`^acl\[(\d+)\]`)

// renameIndex rewrites a warning's leading "acl[i]" to "seq N".
func renameIndex(w string, seqs []int64) string {
	m := indexPrefix.FindStringSubmatch(w)
	if m == nil {
		return w
	}
	i, err := strconv.Atoi(m[1])
	if err != nil || i >= len(seqs) {
		return w
	}
	return "document seq " + strconv.FormatInt(seqs[i], 10) + w[len(m[0]):]
}

// Decide decides req with the ACL in force. Before the first successful
// load it returns ErrNotLoaded, wrapping the last failure.
func (m *Mongo) Decide(req *Request) (MongoDecision, error) {
	s := m.cur.Load()
	if s == nil {
		var reason error = errors.New("no load finished yet")
		if p := m.lastErr.Load(); p != nil {
			reason = *p
		}
		return MongoDecision{Decision: Decision{Rule: -1, Actions: []string{}}}, fmt.Errorf("%w: %w", ErrNotLoaded, reason)
	}
	d := s.acl.Decide(req)
	md := MongoDecision{Decision: d}
	if d.Matched && d.Rule >= 0 && d.Rule < len(s.seqs) {
		md.Seq = s.seqs[d.Rule]
	}
	return md, nil
}

// Len returns the number of rules in force (0 before the first load).
func (m *Mongo) Len() int {
	if s := m.cur.Load(); s != nil {
		return s.acl.Len()
	}
	return 0
}

// LoadedAt returns when the ACL in force was last confirmed by a successful
// load; the zero time before the first.
func (m *Mongo) LoadedAt() time.Time {
	if s := m.cur.Load(); s != nil {
		return s.at
	}
	return time.Time{}
}

// Close stops the reload loop, waits for it, and disconnects the client.
// It is safe to call more than once.
func (m *Mongo) Close() error {
	m.closeOnce.Do(func() {
		m.stop()
		<-m.done
		m.closeErr = m.conn.Close()
	})
	return m.closeErr
}
