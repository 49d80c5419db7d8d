package daemon

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/internal/testutil"
)

// writeServerCert writes a self-signed certificate for name and its key
// to dir/name.pem and dir/name.key.
func writeServerCert(t *testing.T, dir, name string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{name}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestReload applies one configuration change to a running reloader: a
// configuration that loads replaces the one in force (log level and TLS
// certificate included) and one that does not is logged while the old one
// stays in force.
func TestReload(t *testing.T) {
	const tlsOld = "{addr: \"127.0.0.1:5001\", certificate: DIR/old.pem, key: DIR/old.key}"
	tests := []struct {
		name     string
		from, to string // server: sections; DIR stands for the directory
		toLevel  string // log.level of the new configuration
		broken   bool   // the new file does not load
		wantCN   string // the certificate served after the reload ("" for none)
		wantLog  []string
		wantKeep bool // the old configuration stays in force
	}{
		{"level change", `{addr: "127.0.0.1:5001"}`, `{addr: "127.0.0.1:5001"}`, "debug", false, "",
			[]string{"configuration reloaded", "reason=test"}, false},
		{"new certificate", tlsOld, "{addr: \"127.0.0.1:5001\", certificate: DIR/new.pem, key: DIR/new.key}", "info", false, "new",
			[]string{"configuration reloaded"}, false},
		{"listener change needs a restart", `{addr: "127.0.0.1:5001"}`, `{addr: "127.0.0.1:5002"}`, "info", false, "",
			[]string{"take effect only after a restart", "configuration reloaded"}, false},
		{"file does not load", tlsOld, "{addr: \"127.0.0.1:5001\", certificate: DIR/old.pem, key: DIR/old.key}", "info", true, "old",
			[]string{"reload rejected; the previous configuration keeps serving", "unknown key"}, true},
		{"certificate does not load", tlsOld, "{addr: \"127.0.0.1:5001\", certificate: DIR/absent.pem, key: DIR/absent.key}", "info", false, "old",
			[]string{"reload rejected", "server.certificate"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeServerCert(t, dir, "old")
			writeServerCert(t, dir, "new")
			path := writeConfig(t, dir, strings.ReplaceAll(tc.from, "DIR", dir))
			cfg, err := config.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			srv, cert, err := Build(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			var logs testutil.SyncBuffer
			level := new(slog.LevelVar)
			var certPtr atomic.Pointer[tls.Certificate]
			certPtr.Store(cert)
			rl := &reloader{path: path, srv: srv, cert: &certPtr, logger: newLogger(&logs, cfg.Log, level), level: level, cfg: cfg}

			writeConfig(t, dir, strings.ReplaceAll(tc.to, "DIR", dir))
			data, _ := os.ReadFile(path)
			data = append(data, fmt.Sprintf("log: {level: %s}\n", tc.toLevel)...)
			if tc.broken {
				data = append(data, "bogus: 1\n"...)
			}
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			rl.reload("test")

			if kept := rl.cfg == cfg; kept != tc.wantKeep {
				t.Errorf("old configuration kept: %v, want %v", kept, tc.wantKeep)
			}
			wantLevel := slog.LevelInfo
			if tc.toLevel == "debug" && !tc.wantKeep {
				wantLevel = slog.LevelDebug
			}
			if level.Level() != wantLevel {
				t.Errorf("log level %v, want %v", level.Level(), wantLevel)
			}
			gotCN := ""
			if c := certPtr.Load(); c != nil {
				gotCN = c.Leaf.Subject.CommonName
			}
			if gotCN != tc.wantCN {
				t.Errorf("serving certificate %q, want %q", gotCN, tc.wantCN)
			}
			for _, w := range tc.wantLog {
				if !strings.Contains(logs.String(), w) {
					t.Errorf("log lacks %q:\n%s", w, logs.String())
				}
			}
		})
	}
}

// TestFingerprint: the watch notices a change of content, a file appearing
// or disappearing, and nothing else.
func TestFingerprint(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(a, "one")
	tests := []struct {
		name     string
		change   func()
		wantSame bool
	}{
		{"nothing", func() {}, true},
		{"same content rewritten", func() { write(a, "one") }, true},
		{"content changed", func() { write(a, "two") }, false},
		{"missing file appears empty", func() { write(b, "") }, false},
		{"file removed", func() { os.Remove(a) }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := fingerprint([]string{a, b})
			tc.change()
			if same := fingerprint([]string{a, b}) == before; same != tc.wantSame {
				t.Errorf("fingerprint unchanged: %v, want %v", same, tc.wantSame)
			}
		})
	}
}
