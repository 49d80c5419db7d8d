package harness

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse/gatehouse/auth"
	"github.com/gatehouse/gatehouse/config"
)

// Values shared by Gatehouse's and the registry's configuration.
const (
	Issuer  = "gatehouse-e2e"
	Service = "registry.e2e"
)

// Cred is a user name and password; the zero Cred is anonymous.
type Cred struct {
	User, Password string
}

// The users of the seed blog policy (static `users:`), the htpasswd user and
// anonymous.
var (
	Admin     = Cred{"admin", "admin-pw"}
	Alice     = Cred{"alice", "alice-pw"}
	Bob       = Cred{"bob", "bob-pw"}
	Carol     = Cred{"carol", "carol-pw"} // only in the htpasswd file
	Anonymous = Cred{}
)

// KidMode is a value for token.kid.
type KidMode string

// The kid forms the registries accept (see real-components.md).
const (
	KidLibtrust   KidMode = "libtrust"   // registry v2.8
	KidThumbprint KidMode = "thumbprint" // registry v3.1
)

// ExpectedKid is the kid a token signed with pub must carry in mode m.
func ExpectedKid(m KidMode, pub any) (string, error) {
	if m == KidThumbprint {
		return DistributionThumbprint(pub)
	}
	return LibtrustKeyID(pub)
}

// GatehouseOptions selects the parts of auth_config.yml a scenario varies.
type GatehouseOptions struct {
	Key SigningKey
	// Anonymous adds the user `"": {}` and the rule giving it pull on public/*.
	Anonymous bool
	// NoX5C writes `x5c: false`; otherwise the key is omitted (default true).
	NoX5C bool
	// Kid writes `kid: <Kid>` when set; otherwise the key is omitted.
	Kid KidMode
	// ExtraACL is YAML list items appended to the seed policy's acl, e.g.
	// rules on ${labels:KEY} for another authenticator's users.
	ExtraACL string
	// TokenExtra is YAML added to the token section, each line indented by
	// two spaces, e.g. refresh_secret_file for a key held by a key service.
	TokenExtra string
	// ExtraSections is top-level YAML appended to auth_config.yml, e.g. an
	// ldap_auth section.
	ExtraSections string
	// Listener, when set, is where Gatehouse serves: a test that must
	// write Gatehouse's own URL into its configuration (oidc_auth's
	// redirect_url) listens first.
	Listener net.Listener
}

// Gatehouse is a running Gatehouse token server.
type Gatehouse struct {
	Host       string // localhost:PORT
	Realm      string // http://localhost:PORT/auth
	ConfigPath string

	exchanges *recorder
	log       *syncBuffer
}

// StartGatehouse writes auth_config.yml and the htpasswd file into dir, loads
// them with config.Load, and serves auth.New's handler on a loopback
// listener until the test ends.
func StartGatehouse(t testing.TB, dir string, o GatehouseOptions) *Gatehouse {
	t.Helper()
	g := &Gatehouse{
		ConfigPath: filepath.Join(dir, "auth_config.yml"),
		log:        &syncBuffer{},
	}
	htpasswdPath := filepath.Join(dir, "htpasswd")
	writeFile(t, htpasswdPath, fmt.Sprintf("%s:%s\n", Carol.User, hash(t, Carol.Password)))
	writeFile(t, g.ConfigPath, authConfig(t, o, htpasswdPath))

	cfg, err := config.Load(g.ConfigPath)
	if err != nil {
		t.Fatalf("config.Load rejected the test configuration: %v\n--- %s ---\n%s",
			err, g.ConfigPath, readFile(t, g.ConfigPath))
	}
	logger := slog.New(slog.NewTextHandler(g.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := auth.New(cfg, auth.WithLogger(logger))
	if err != nil {
		t.Fatalf("auth.New: %v\n--- %s ---\n%s\n--- gatehouse log ---\n%s",
			err, g.ConfigPath, readFile(t, g.ConfigPath), g.log.String())
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("closing gatehouse: %v", err)
		}
	})

	g.exchanges = &recorder{name: "gatehouse"}
	if o.Listener != nil {
		g.Host = serveOn(t, o.Listener, g.exchanges.wrap(srv))
	} else {
		g.Host = serve(t, g.exchanges.wrap(srv))
	}
	g.Realm = "http://" + g.Host + "/auth"
	return g
}

// authConfig renders auth_config.yml: the seed blog's policy (admin has full
// access, every user full access to ${account}/*), plus the options.
func authConfig(t testing.TB, o GatehouseOptions, htpasswdPath string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, `server:
  addr: ":5001"
token:
  issuer: %q
  expiration: 900
  certificate: %q
  key: %q
`, Issuer, o.Key.CertPath, o.Key.KeyPath)
	b.WriteString(o.TokenExtra)
	if o.NoX5C {
		b.WriteString("  x5c: false\n")
	}
	if o.Kid != "" {
		fmt.Fprintf(&b, "  kid: %s\n", o.Kid)
	}
	b.WriteString("users:\n")
	for _, u := range []Cred{Admin, Alice, Bob} {
		fmt.Fprintf(&b, "  %q:\n    password: %q\n", u.User, hash(t, u.Password))
	}
	if o.Anonymous {
		b.WriteString("  \"\": {}\n")
	}
	fmt.Fprintf(&b, `htpasswd_auth:
  path: %q
acl:
  # Admin has full access to everything.
  - match: {account: "admin"}
    actions: ["*"]
  # Users have full right on their repository
  - match: {account: "/.+/", name: "${account}/*"}
    actions: ["*"]
`, htpasswdPath)
	b.WriteString(o.ExtraACL)
	if o.Anonymous {
		b.WriteString(`  # Anonymous users may pull public/*.
  - match: {account: "", name: "public/*"}
    actions: ["pull"]
`)
	}
	b.WriteString("  # Access is denied by default.\n")
	b.WriteString(o.ExtraSections)
	return b.String()
}

var (
	hashMu sync.Mutex
	hashes = map[string]string{}
)

// hash returns a bcrypt hash of password at the minimum cost, in the $2y$
// form `htpasswd -nbB` writes (and the seed blog's users carry).
func hash(t testing.TB, password string) string {
	t.Helper()
	hashMu.Lock()
	defer hashMu.Unlock()
	if h, ok := hashes[password]; ok {
		return h
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	s := "$2y$" + strings.TrimPrefix(string(h), "$2a$")
	hashes[password] = s
	return s
}

// serve serves h on 127.0.0.1:0 until the test ends and returns
// "localhost:PORT".
func serve(t testing.TB, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, ln, h)
}

// serveOn serves h on ln until the test ends and returns "localhost:PORT".
func serveOn(t testing.TB, ln net.Listener, h http.Handler) string {
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return fmt.Sprintf("localhost:%d", ln.Addr().(*net.TCPAddr).Port)
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read: %v)", err)
	}
	return string(b)
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string { return b.since(0) }

func (b *syncBuffer) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

func (b *syncBuffer) since(offset int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf.Bytes()[min(offset, b.buf.Len()):])
}
