// Package mongotest runs a real MongoDB wire-protocol server for tests:
// FerretDB v1 embedded in the test process with its SQLite backend, on a
// loopback port, with its data in t.TempDir().
//
// Tests use it to check Gatehouse's mongo_auth and acl_mongo against the
// protocol the MongoDB Go driver really speaks, including the server going
// away and coming back on the same address with the same data:
//
//	srv := mongotest.Start(t)
//	db := srv.Client(t).Database("docker_auth")
//	// … insert users, point mongo_auth at srv.Addr() …
//	srv.Stop()    // connections drop, the port refuses
//	srv.Restart() // same port, same data
//
// It is imported only by tests; nothing in the server links it.
package mongotest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gatehouse/gatehouse/internal/testutil"
)

// Server is a running (or stopped) embedded FerretDB.
type Server struct {
	t   testing.TB
	dir string
	tls *TLSFiles

	mu     sync.Mutex
	addr   string // 127.0.0.1:PORT, fixed after the first start
	cancel context.CancelFunc
	done   chan struct{}
	log    *testutil.SyncBuffer
}

// TLSFiles are the PEM files of a server started with StartTLS.
type TLSFiles struct {
	CAFile   string // the self-signed certificate, to trust
	CertFile string
	KeyFile  string
}

// Start starts FerretDB on 127.0.0.1 with a free port. It stops when the
// test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, nil, anyPort)
}

// StartTLS starts FerretDB serving TLS only, with a self-signed certificate
// for 127.0.0.1 and localhost whose files TLS returns.
func StartTLS(t testing.TB) *Server {
	t.Helper()
	return start(t, writeCert(t, t.TempDir()), anyPort)
}

// StartAt starts FerretDB on addr, such as an address ClosedAddr returned:
// a database that comes up after its clients.
func StartAt(t testing.TB, addr string) *Server {
	t.Helper()
	return start(t, nil, addr)
}

// anyPort asks for a free loopback port.
const anyPort = "127.0.0.1:0"

func start(t testing.TB, tlsFiles *TLSFiles, addr string) *Server {
	testutil.UsesComponent(t, "FerretDB")
	s := &Server{t: t, dir: t.TempDir(), tls: tlsFiles, log: &testutil.SyncBuffer{}}
	s.run(addr)
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("--- ferretdb log ---\n%s", s.log.String())
		}
	})
	return s
}

// Addr returns "127.0.0.1:PORT".
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// URI returns the server's connection string, mongodb://127.0.0.1:PORT/
// (with tls=true for a TLS server).
func (s *Server) URI() string {
	u := url.URL{Scheme: "mongodb", Host: s.Addr(), Path: "/"}
	if s.tls != nil {
		u.RawQuery = url.Values{"tls": {"true"}, "tlsCAFile": {s.tls.CAFile}}.Encode()
	}
	return u.String()
}

// TLS returns the certificate files of a StartTLS server, nil otherwise.
func (s *Server) TLS() *TLSFiles { return s.tls }

// Stop stops the server and waits until every connection is closed (FerretDB
// gives connected clients up to 3 s). Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	cancel, done := s.cancel, s.done
	s.cancel, s.done = nil, nil
	s.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

// Restart starts a stopped server again on the same port with the same data.
func (s *Server) Restart() {
	s.t.Helper()
	s.run(s.Addr())
}

func (s *Server) run(addr string) {
	s.t.Helper()
	listener := ferretdb.ListenerConfig{TCP: addr}
	if s.tls != nil {
		listener = ferretdb.ListenerConfig{TLS: addr, TLSCertFile: s.tls.CertFile, TLSKeyFile: s.tls.KeyFile}
	}
	var (
		f   *ferretdb.FerretDB
		err error
	)
	// The port of a just-stopped server can take a moment to be free again.
	for range 50 {
		f, err = ferretdb.New(&ferretdb.Config{
			Listener:  listener,
			Handler:   "sqlite",
			SQLiteURL: "file:" + s.dir + "/",
			Logger:    slog.New(slog.NewTextHandler(s.log, &slog.HandlerOptions{Level: slog.LevelWarn})),
		})
		if err == nil || addr == anyPort {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("mongotest: starting ferretdb on %s: %v", addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = f.Run(ctx)
	}()
	u, err := url.Parse(f.MongoDBURI()) // blocks until it listens
	if err != nil {
		cancel()
		<-done
		s.t.Fatalf("mongotest: ferretdb URI: %v", err)
	}
	s.mu.Lock()
	s.addr, s.cancel, s.done = u.Host, cancel, done
	s.mu.Unlock()
}

// Client returns a driver client for seeding and changing data, with short
// timeouts; it is disconnected when the test ends.
func (s *Server) Client(t testing.TB) *mongo.Client {
	t.Helper()
	c, err := mongo.Connect(options.Client().ApplyURI(s.URI()).
		SetServerSelectionTimeout(5 * time.Second).
		SetTimeout(10 * time.Second))
	if err != nil {
		t.Fatalf("mongotest: client: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Disconnect(ctx)
	})
	return c
}

// Blackhole listens on a loopback port, accepts connections and never
// answers: a database "slow past any timeout". It returns "127.0.0.1:PORT"
// and closes when the test ends.
func Blackhole(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
}

// ClosedAddr returns a loopback "127.0.0.1:PORT" where nothing listens: a
// database that is down.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// writeCert writes a self-signed P-256 certificate for 127.0.0.1 and
// localhost, valid for a day, into dir.
func writeCert(t testing.TB, dir string) *TLSFiles {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mongotest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	f := &TLSFiles{
		CAFile:   filepath.Join(dir, "ca.pem"),
		CertFile: filepath.Join(dir, "cert.pem"),
		KeyFile:  filepath.Join(dir, "key.pem"),
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	for path, data := range map[string][]byte{
		f.CAFile:   certPEM,
		f.CertFile: certPEM,
		f.KeyFile:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(fmt.Errorf("mongotest: %w", err))
		}
	}
	return f
}
