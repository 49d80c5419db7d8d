package acl

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongooptions "go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gatehouse/gatehouse/internal/cfgerr"
	"github.com/gatehouse/gatehouse/internal/mongoconn"
)

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
		if prev != nil {
			m.inherit(&prev.reloader)
		}
	}
}

// Mongo is the acl_mongo authorizer: the last ACL loaded from the
// collection, reloaded in the background. An invalid collection (a bad
// document, a duplicate seq) and a database that is down leave the last
// good ACL in force. It owns its client and its goroutine; Close stops both.
// Decide, Refresh, Len, LoadedAt and LoadFailures come from the reload loop
// it shares with acl_xorm.
type Mongo struct {
	reloader
	conn *mongoconn.Conn
}

var _ io.Closer = (*Mongo)(nil)

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
	m := &Mongo{conn: conn}
	m.reloader = reloader{section: "acl_mongo", source: conn.String(), docs: "mongo: acl document", item: "document",
		ttl: cfg.CacheTTL, clock: realClock{}, logger: slog.New(slog.DiscardHandler)}
	m.load = m.fetch
	for _, o := range opts {
		o(m)
	}
	m.logger = m.logger.With("collection", conn.String())
	m.start()
	return m, nil
}

// fetch reads every document, sorted by seq by the server.
func (m *Mongo) fetch(ctx context.Context) ([sha256.Size]byte, func() ([]ruleDoc, error), error) {
	ctx, cancel := m.conn.WithTimeout(ctx)
	defer cancel()
	cur, err := m.conn.Collection.Find(ctx, bson.D{}, mongooptions.Find().SetSort(bson.D{{Key: "seq", Value: 1}}))
	if err != nil {
		return [sha256.Size]byte{}, nil, fmt.Errorf("mongo: acl: find: %w", err)
	}
	defer func() { _ = cur.Close(context.WithoutCancel(ctx)) }()
	var raws [][]byte
	for cur.Next(ctx) {
		raws = append(raws, append([]byte(nil), cur.Current...))
	}
	if err := cur.Err(); err != nil {
		return [sha256.Size]byte{}, nil, fmt.Errorf("mongo: acl: read: %w", err)
	}
	return digestOf(raws), func() ([]ruleDoc, error) { return parseMongoDocs(raws) }, nil
}

// Close stops the reload loop, waits for it, and disconnects the client.
// It is safe to call more than once.
func (m *Mongo) Close() error { return m.shutdown(m.conn.Close) }
