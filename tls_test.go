package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServeTLS runs the binary with server.certificate and key: it answers
// over HTTPS with that certificate, sends HSTS, and refuses TLS 1.2 when
// tls_min_version is TLS13.
func TestServeTLS(t *testing.T) {
	bin := gatehouseBinary(t)
	dir := t.TempDir()
	der := writeStandInKeyPair(t, filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key"))

	port := freePort(t)
	cfg := strings.Replace(opsConfig(t, dir, port, ""), fmt.Sprintf(`server: {addr: "127.0.0.1:%d"}`, port),
		fmt.Sprintf("server: {addr: \"127.0.0.1:%d\", certificate: %s/server.pem, key: %s/server.key, hsts: true, tls_min_version: TLS13}", port, dir, dir), 1)
	_, logs := startGatehouse(t, bin, writeOpsConfig(t, dir, cfg))

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	client := func(maxVersion uint16) *http.Client {
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: maxVersion}}}
	}
	url := fmt.Sprintf("https://localhost:%d/auth?service=registry&scope=repository:alice/a:pull", port)
	var resp *http.Response
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.SetBasicAuth("alice", "alicepw")
		if resp, err = client(0).Do(req); err == nil {
			break
		}
	}
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("no token over HTTPS: %v %v\n%s", resp, err, logs.String())
	}
	resp.Body.Close()
	if resp.TLS == nil || resp.TLS.Version != tls.VersionTLS13 || !strings.HasPrefix(resp.Header.Get("Strict-Transport-Security"), "max-age=") {
		t.Fatalf("TLS %+v, HSTS %q", resp.TLS, resp.Header.Get("Strict-Transport-Security"))
	}
	if _, err := client(tls.VersionTLS12).Get(url); err == nil {
		t.Fatal("a TLS 1.2 client was served despite tls_min_version: TLS13")
	}
}
