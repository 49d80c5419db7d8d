// Package mongoconn is the connection to MongoDB that mongo_auth and
// acl_mongo share: docker_auth's dial_info keys, a mongodb:// uri as the
// alternative, the checks on both, and a client built from them.
//
// Nothing here is global: every Open makes a new client, owned by the
// authenticator or authorizer that asked for it and disconnected by its
// Close, so a configuration reload really changes the connection.
package mongoconn

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"

	"github.com/gatehouse/gatehouse/internal/cfgerr"
)

// DefaultTimeout bounds every operation when neither dial_info.timeout nor
// the uri's timeoutMS says otherwise (docker_auth's default).
const DefaultTimeout = 10 * time.Second

// Mechanisms are the dial_info.mechanism values accepted; "" lets the driver
// negotiate SCRAM with the server.
var Mechanisms = []string{"", "SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN"}

// DialInfo is docker_auth's `dial_info` (the fields of mgo.DialInfo it
// decodes, plus password_file and enable_tls), and Gatehouse's ca_file:
//
//	dial_info:
//	  addrs: ["mongo1:27017", "mongo2:27017"]  # every seed is used (docker_auth used the first)
//	  timeout: "10s"             # bounds each lookup and load; default 10s
//	  database: docker_auth
//	  username: gatehouse        # optional: a server without authentication works
//	  password_file: /run/secrets/mongo   # trailing white space is trimmed
//	  source: admin              # authentication database; default admin
//	  mechanism: SCRAM-SHA-256   # default: negotiated
//	  direct: false              # talk to the seeds only, no replica set discovery
//	  enable_tls: false
//	  ca_file: /ssl/mongo-ca.pem # with enable_tls: trust this CA instead of the system's
type DialInfo struct {
	// Addrs are host or host:port seeds (port 27017 by default).
	Addrs []string `yaml:"addrs"`
	// Timeout bounds every operation; 0 means DefaultTimeout.
	Timeout time.Duration `yaml:"timeout"`
	// Database holds the collection.
	Database string `yaml:"database"`
	// Username is optional; without it the client does not authenticate.
	Username string `yaml:"username"`
	// Password is accepted as in docker_auth; prefer PasswordFile.
	Password string `yaml:"password"`
	// PasswordFile holds the password; it is read when the client is built.
	PasswordFile string `yaml:"password_file"`
	// Source is the authentication database; "" means "admin".
	Source string `yaml:"source"`
	// Mechanism is the authentication mechanism, one of Mechanisms.
	Mechanism string `yaml:"mechanism"`
	// Direct connects to the seeds only, without replica set discovery.
	Direct bool `yaml:"direct"`
	// FailFast is accepted for docker_auth compatibility and ignored:
	// Gatehouse always gives up when Timeout is over.
	FailFast bool `yaml:"failfast"`
	// EnableTLS speaks TLS to the servers.
	EnableTLS bool `yaml:"enable_tls"`
	// CAFile is a PEM bundle of the CAs to trust with EnableTLS; empty means
	// the system's roots.
	CAFile string `yaml:"ca_file"`
}

// Config is the connection part of the mongo_auth and acl_mongo sections:
// dial_info, or uri as the alternative, and the collection.
//
//	uri: "mongodb://gatehouse@mongo1,mongo2/docker_auth?replicaSet=rs0&timeoutMS=5000"
//	password_file: /run/secrets/mongo   # with uri: the password of the uri's user
//	collection: users
//
// With uri the database is the uri's path, the timeout its timeoutMS
// (default 10s), and every other driver option is the uri's.
type Config struct {
	// DialInfo is docker_auth's way to say where the server is.
	DialInfo *DialInfo `yaml:"dial_info"`
	// URI is a mongodb:// or mongodb+srv:// connection string naming the
	// database in its path.
	URI string `yaml:"uri"`
	// PasswordFile, with URI, holds the password of the uri's user, so that
	// the configuration file holds no secret.
	PasswordFile string `yaml:"password_file"`
	// Collection is the collection to read.
	Collection string `yaml:"collection"`
}

// Validate checks the keys without any I/O (no file is read, no DNS is
// asked); problems are placed at their keys relative to the section.
func (c *Config) Validate() error {
	var errs []error
	add := func(err error, path ...string) { errs = append(errs, cfgerr.At(err, path...)) }
	switch {
	case c.DialInfo != nil && c.URI != "":
		add(errors.New("set dial_info or uri, not both"), "uri")
	case c.DialInfo == nil && c.URI == "":
		add(errors.New("dial_info (or uri) is required"), "dial_info")
	case c.DialInfo != nil:
		errs = append(errs, cfgerr.At(c.DialInfo.validate(), "dial_info"))
		if c.PasswordFile != "" {
			add(errors.New("goes inside dial_info; at this level it is the password of uri's user"), "password_file")
		}
	default:
		if _, err := parseURI(c.URI, c.PasswordFile != ""); err != nil {
			add(err, "uri")
		}
	}
	if c.Collection == "" {
		add(errors.New("is required"), "collection")
	}
	return errors.Join(errs...)
}

func (d *DialInfo) validate() error {
	var errs []error
	add := func(err error, path ...string) { errs = append(errs, cfgerr.At(err, path...)) }
	if len(d.Addrs) == 0 {
		add(errors.New(`at least one address is required, e.g. ["localhost:27017"]`), "addrs")
	}
	for i, a := range d.Addrs {
		if err := checkAddr(a); err != nil {
			add(err, "addrs", strconv.Itoa(i))
		}
	}
	if d.Timeout < 0 {
		add(fmt.Errorf("must not be negative, got %s", d.Timeout), "timeout")
	}
	if d.Database == "" {
		add(errors.New("is required"), "database")
	}
	if d.Password != "" && d.PasswordFile != "" {
		add(errors.New("set password or password_file, not both"), "password_file")
	}
	if d.Username == "" && (d.Password != "" || d.PasswordFile != "") {
		add(errors.New("a password needs a username"), "username")
	}
	if !slices.Contains(Mechanisms, d.Mechanism) {
		add(fmt.Errorf("must be one of %s, got %q", strings.Join(Mechanisms[1:], ", "), d.Mechanism), "mechanism")
	}
	if d.Username == "" && (d.Source != "" || d.Mechanism != "") {
		key := "source"
		if d.Mechanism != "" {
			key = "mechanism"
		}
		add(errors.New("applies only with a username"), key)
	}
	if d.CAFile != "" && !d.EnableTLS {
		add(errors.New("applies only with enable_tls: true"), "ca_file")
	}
	return errors.Join(errs...)
}

// checkAddr accepts host and host:port.
func checkAddr(a string) error {
	if strings.TrimSpace(a) != a || a == "" {
		return fmt.Errorf("%q is not a host or host:port", a)
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		if strings.Contains(a, ":") && !strings.HasPrefix(a, "[") {
			return fmt.Errorf("%q is not a host or host:port (write IPv6 addresses as [::1]:27017)", a)
		}
		return nil // a bare host name; the driver adds port 27017
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || host == "" {
		return fmt.Errorf("%q is not a host or host:port", a)
	}
	return nil
}

// parseURI parses uri without DNS: a mongodb+srv uri is parsed as if it were
// mongodb://, which checks everything but the SRV lookup the driver does
// when it connects. The error never quotes the uri (it may hold a password).
func parseURI(uri string, passwordFromFile bool) (*connstring.ConnString, error) {
	plain := uri
	srv := strings.HasPrefix(uri, connstring.SchemeMongoDBSRV+"://")
	if srv {
		plain = connstring.SchemeMongoDB + "://" + strings.TrimPrefix(uri, connstring.SchemeMongoDBSRV+"://")
	}
	cs, err := connstring.Parse(plain)
	if err != nil {
		return nil, fmt.Errorf("not a valid connection string: %w", err)
	}
	if !srv {
		if err := cs.Validate(); err != nil {
			return nil, fmt.Errorf("not a valid connection string: %w", err)
		}
	}
	if cs.Database == "" {
		return nil, errors.New("must name the database in its path, e.g. mongodb://host:27017/docker_auth")
	}
	if passwordFromFile {
		if cs.Username == "" {
			return nil, errors.New("password_file needs a user name in the uri (mongodb://USER@host/db)")
		}
		if cs.PasswordSet {
			return nil, errors.New("has a password and password_file is set: keep the password in one place")
		}
	}
	return cs, nil
}

// Files lists the files the section names (password and CA files), so a
// change to one of them reloads the configuration.
func (c *Config) Files() []string {
	files := []string{c.PasswordFile}
	if c.DialInfo != nil {
		files = append(files, c.DialInfo.PasswordFile, c.DialInfo.CAFile)
	}
	if cs, err := parseURI(c.URI, false); err == nil {
		files = append(files, cs.SSLCaFile, cs.SSLClientCertificateKeyFile, cs.SSLCertificateFile, cs.SSLPrivateKeyFile)
	}
	out := files[:0]
	for _, f := range files {
		if f != "" {
			out = append(out, f)
		}
	}
	return out
}

// Timeout is how long one operation may take.
func (c *Config) Timeout() time.Duration {
	if c.DialInfo != nil {
		if c.DialInfo.Timeout > 0 {
			return c.DialInfo.Timeout
		}
		return DefaultTimeout
	}
	if cs, err := parseURI(c.URI, false); err == nil && cs.TimeoutSet && cs.Timeout > 0 {
		return cs.Timeout
	}
	return DefaultTimeout
}

// Database is the database holding the collection.
func (c *Config) Database() string {
	if c.DialInfo != nil {
		return c.DialInfo.Database
	}
	if cs, err := parseURI(c.URI, false); err == nil {
		return cs.Database
	}
	return ""
}
