package authn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse/gatehouse/internal/mongoconn"
)

// MongoConfig is the `mongo_auth:` section: users kept in a MongoDB
// collection, docker_auth's keys plus uri as the alternative to dial_info.
//
//	mongo_auth:
//	  dial_info:
//	    addrs: ["mongo:27017"]
//	    timeout: "5s"              # each lookup; past it the client gets 503
//	    database: docker_auth
//	    username: gatehouse        # optional
//	    password_file: /run/secrets/mongo
//	    enable_tls: false
//	  collection: users
//
// or with a connection string instead of dial_info:
//
//	mongo_auth:
//	  uri: "mongodb://gatehouse@mongo1,mongo2/docker_auth?replicaSet=rs0&timeoutMS=5000"
//	  password_file: /run/secrets/mongo   # the password of the uri's user
//	  collection: users
//
// Each user is a document {username, password (bcrypt), labels {key:
// [values]}}; see docs/mongodb.md for the index to create.
type MongoConfig struct {
	mongoconn.Config `yaml:",inline"`
}

// Validate checks the section without I/O; problems are placed at their
// keys relative to the section.
func (c *MongoConfig) Validate() error { return c.Config.Validate() }

// Mongo authenticates the users of a MongoDB collection, with one lookup by
// username per request. It owns its client; Close disconnects it.
type Mongo struct {
	conn   *mongoconn.Conn
	logger *slog.Logger

	checkDone chan struct{}
	stopCheck context.CancelFunc
	closeOnce sync.Once
	closeErr  error
}

var (
	_ Authenticator = (*Mongo)(nil)
	_ BcryptCoster  = (*Mongo)(nil)
	_ Checker       = (*Mongo)(nil)
	_ io.Closer     = (*Mongo)(nil)
)

// MongoOption configures NewMongo.
type MongoOption func(*Mongo)

// WithMongoLogger sets where the authenticator logs (its index check);
// the default discards.
func WithMongoLogger(l *slog.Logger) MongoOption {
	return func(m *Mongo) {
		if l != nil {
			m.logger = l
		}
	}
}

// mongoUser is a user document; unknown fields are ignored.
type mongoUser struct {
	Password string   `bson:"password"`
	Labels   bson.Raw `bson:"labels"`
}

// NewMongo validates cfg, reads its password file and builds the client. It
// does not wait for the server: a database that is down at startup makes
// requests fail with ErrUnavailable until it answers. In the background it
// checks once that username is indexed and logs a warning otherwise.
func NewMongo(cfg MongoConfig, opts ...MongoOption) (*Mongo, error) {
	conn, err := mongoconn.Open(&cfg.Config)
	if err != nil {
		return nil, err
	}
	m := &Mongo{conn: conn, logger: slog.New(slog.DiscardHandler), checkDone: make(chan struct{})}
	for _, o := range opts {
		o(m)
	}
	m.logger = m.logger.With("authenticator", "mongo", "collection", conn.String())
	var ctx context.Context
	ctx, m.stopCheck = context.WithCancel(context.Background())
	go func() {
		defer close(m.checkDone)
		m.checkIndex(ctx)
	}()
	return m, nil
}

// Name returns "mongo".
func (m *Mongo) Name() string { return "mongo" }

// MongoAssumedBcryptCost is the bcrypt cost the chain assumes for MongoDB
// users, whose hashes it cannot see in advance: bcrypt's default, which
// `gatehouse hash` and most tools write. Unknown accounts spend a
// comparison at this cost, and every password check takes at least as long.
const MongoAssumedBcryptCost = bcrypt.DefaultCost

// MaxBcryptCost returns MongoAssumedBcryptCost.
func (m *Mongo) MaxBcryptCost() int { return MongoAssumedBcryptCost }

// MinBcryptCost returns MongoAssumedBcryptCost.
func (m *Mongo) MinBcryptCost() int { return MongoAssumedBcryptCost }

// Authenticate looks account up and compares password with its bcrypt
// hash. The account is always queried as a string value, so a name such as
// {"$ne": ""} is only a name. A user without a password can not log in.
func (m *Mongo) Authenticate(ctx context.Context, account, password string) (Account, error) {
	u, err := m.find(ctx, account)
	if err != nil {
		return Account{}, err
	}
	if u.Password == "" || bcrypt.CompareHashAndPassword([]byte(u.Password), []byte(password)) != nil {
		return Account{}, ErrWrongPassword
	}
	return m.account(account, u)
}

// Lookup returns the account's current labels and credential without a
// password.
func (m *Mongo) Lookup(ctx context.Context, account string) (Account, error) {
	u, err := m.find(ctx, account, options.FindOne().SetProjection(bson.D{{Key: "labels", Value: 1}, {Key: "password", Value: 1}}))
	if err != nil {
		return Account{}, err
	}
	return m.account(account, u)
}

// account is what Authenticate and Lookup return for the user u.
func (m *Mongo) account(account string, u *mongoUser) (Account, error) {
	labels, err := m.labels(account, u)
	if err != nil {
		return Account{}, err
	}
	return Account{Name: account, Labels: labels, Credential: u.Password}, nil
}

// find runs the one lookup of a request, bounded by the configured timeout.
func (m *Mongo) find(ctx context.Context, account string, opts ...options.Lister[options.FindOneOptions]) (*mongoUser, error) {
	if account == "" {
		return nil, ErrNoMatch // no anonymous account in MongoDB
	}
	ctx, cancel := m.conn.WithTimeout(ctx)
	defer cancel()
	filter := bson.D{{Key: "username", Value: account}}
	var u mongoUser
	switch err := m.conn.Collection.FindOne(ctx, filter, opts...).Decode(&u); {
	case err == nil:
		return &u, nil
	case errors.Is(err, mongo.ErrNoDocuments):
		return nil, ErrNoMatch
	default:
		return nil, fmt.Errorf("%w: mongo: find user %q: %w", ErrUnavailable, account, err)
	}
}

// labels decodes the labels field: a document whose values are arrays of
// strings (a single string is taken as a one-value list). A malformed field
// is a backend failure, logged with the account, never a silent "no
// labels".
func (m *Mongo) labels(account string, u *mongoUser) (Labels, error) {
	if len(u.Labels) == 0 {
		return Labels{}, nil
	}
	elems, err := u.Labels.Elements()
	if err != nil {
		return nil, fmt.Errorf("%w: mongo: user %q: labels: %w", ErrUnavailable, account, err)
	}
	out := make(Labels, len(elems))
	for _, e := range elems {
		key, val := e.Key(), e.Value()
		if s, ok := val.StringValueOK(); ok {
			out[key] = []string{s}
			continue
		}
		arr, ok := val.ArrayOK()
		if !ok {
			return nil, fmt.Errorf("%w: mongo: user %q: labels.%s: want an array of strings, got %s", ErrUnavailable, account, key, val.Type)
		}
		vals, err := arr.Values()
		if err != nil {
			return nil, fmt.Errorf("%w: mongo: user %q: labels.%s: %w", ErrUnavailable, account, key, err)
		}
		list := make([]string, 0, len(vals))
		for _, v := range vals {
			s, ok := v.StringValueOK()
			if !ok {
				return nil, fmt.Errorf("%w: mongo: user %q: labels.%s: want strings, got %s", ErrUnavailable, account, key, v.Type)
			}
			list = append(list, s)
		}
		out[key] = list
	}
	return out, nil
}

// Check pings the database, for /readyz; it honours ctx and the configured
// timeout.
func (m *Mongo) Check(ctx context.Context) error {
	ctx, cancel := m.conn.WithTimeout(ctx)
	defer cancel()
	if err := m.conn.Ping(ctx); err != nil {
		return fmt.Errorf("mongo: ping: %w", err)
	}
	return nil
}

// checkIndex warns when no index starts with username: without one every
// request scans the collection.
func (m *Mongo) checkIndex(ctx context.Context) {
	ctx, cancel := m.conn.WithTimeout(ctx)
	defer cancel()
	specs, err := m.conn.Collection.Indexes().ListSpecifications(ctx)
	if err != nil {
		if ctx.Err() == nil {
			m.logger.Warn("mongo: cannot list the indexes of the users collection", "error", err)
		}
		return
	}
	for _, s := range specs {
		if elems, err := s.KeysDocument.Elements(); err == nil && len(elems) > 0 && elems[0].Key() == "username" {
			return
		}
	}
	m.logger.Warn("mongo: no index on username: every login scans the collection; create one with db.<collection>.createIndex({username: 1}, {unique: true})")
}

// Close stops the background index check and disconnects the client. It is
// safe to call more than once.
func (m *Mongo) Close() error {
	m.closeOnce.Do(func() {
		m.stopCheck()
		<-m.checkDone
		m.closeErr = m.conn.Close()
	})
	return m.closeErr
}
