package mongoconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"

	"github.com/gatehouse/gatehouse/internal/cfgerr"
)

// appName is sent to the server, which shows it in its logs and currentOp.
const appName = "gatehouse"

// Conn is one client and the collection it reads. It belongs to the
// authenticator or authorizer that opened it.
type Conn struct {
	// Collection is the configured collection.
	Collection *mongo.Collection
	// Timeout bounds each operation; callers derive their deadline with
	// WithTimeout.
	Timeout time.Duration

	client *mongo.Client
	where  string
}

// Open reads the password file, if any, and builds the client. It does not
// wait for the server: the driver connects in the background and each
// operation waits for it at most Timeout, so a database that is down at
// startup only makes the first operations fail. Problems are placed at
// their keys.
func Open(cfg *Config) (*Conn, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts, err := clientOptions(cfg)
	if err != nil {
		return nil, err
	}
	timeout := cfg.Timeout()
	opts.SetAppName(appName)
	if opts.ServerSelectionTimeout == nil {
		opts.SetServerSelectionTimeout(timeout)
	}
	if opts.ConnectTimeout == nil {
		opts.SetConnectTimeout(timeout)
	}
	client, err := mongo.Connect(opts)
	if err != nil {
		return nil, cfgerr.At(fmt.Errorf("mongo: %w", err), connKey(cfg))
	}
	db := cfg.Database()
	return &Conn{
		Collection: client.Database(db).Collection(cfg.Collection),
		Timeout:    timeout,
		client:     client,
		where:      fmt.Sprintf("%s/%s.%s", strings.Join(opts.Hosts, ","), db, cfg.Collection),
	}, nil
}

func connKey(cfg *Config) string {
	if cfg.DialInfo != nil {
		return "dial_info"
	}
	return "uri"
}

func clientOptions(cfg *Config) (*options.ClientOptions, error) {
	if cfg.DialInfo == nil {
		opts := options.Client().ApplyURI(cfg.URI)
		if err := opts.Validate(); err != nil {
			return nil, cfgerr.At(fmt.Errorf("mongo: %w", err), "uri")
		}
		if cfg.PasswordFile != "" && opts.Auth != nil {
			pw, err := readPassword(cfg.PasswordFile)
			if err != nil {
				return nil, cfgerr.At(err, "password_file")
			}
			opts.Auth.Password, opts.Auth.PasswordSet = pw, true
		}
		return opts, nil
	}
	d := cfg.DialInfo
	opts := options.Client().SetHosts(d.Addrs).SetDirect(d.Direct)
	if d.Username != "" {
		cred := options.Credential{
			Username:      d.Username,
			Password:      d.Password,
			PasswordSet:   d.Password != "",
			AuthSource:    d.Source,
			AuthMechanism: d.Mechanism,
		}
		if cred.AuthSource == "" {
			cred.AuthSource = "admin"
		}
		if d.PasswordFile != "" {
			pw, err := readPassword(d.PasswordFile)
			if err != nil {
				return nil, cfgerr.At(err, "dial_info", "password_file")
			}
			cred.Password, cred.PasswordSet = pw, true
		}
		opts.SetAuth(cred)
	}
	if err := opts.Validate(); err != nil {
		return nil, cfgerr.At(fmt.Errorf("mongo: %w", err), "dial_info")
	}
	if d.EnableTLS {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if d.CAFile != "" {
			pem, err := os.ReadFile(d.CAFile)
			if err != nil {
				return nil, cfgerr.At(fmt.Errorf("mongo: %w", err), "dial_info", "ca_file")
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, cfgerr.At(fmt.Errorf("mongo: %s holds no PEM certificate", d.CAFile), "dial_info", "ca_file")
			}
		}
		opts.SetTLSConfig(tc)
	}
	return opts, nil
}

// readPassword reads a password file, trimming trailing white space (the
// newline editors add) as docker_auth does.
func readPassword(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("mongo: %w", err)
	}
	pw := strings.TrimRight(string(b), " \t\r\n")
	if pw == "" {
		return "", fmt.Errorf("mongo: %s is empty", path)
	}
	return pw, nil
}

// WithTimeout derives the context of one operation: ctx's deadline or
// Timeout from now, whichever comes first.
func (c *Conn) WithTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.Timeout)
}

// Ping asks the server to answer, within ctx.
func (c *Conn) Ping(ctx context.Context) error {
	return c.client.Ping(ctx, readpref.Primary())
}

// String names the hosts, database and collection for logs; it never holds
// credentials.
func (c *Conn) String() string { return c.where }

// Close disconnects the client, waiting at most Timeout for operations in
// flight.
func (c *Conn) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	if err := c.client.Disconnect(ctx); err != nil && !errors.Is(err, mongo.ErrClientDisconnected) {
		return fmt.Errorf("mongo: disconnect: %w", err)
	}
	return nil
}
