package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServeMaxConnections runs the binary with server.max_connections: 2:
// two open keep-alive connections are served, a third is not accepted
// (its request waits) until one of the two closes.
func TestServeMaxConnections(t *testing.T) {
	dir := t.TempDir()
	bin := gatehouseBinary(t)
	port := freePort(t)
	cfg := strings.Replace(opsConfig(t, dir, port, ""), "server: {", "server: {max_connections: 2, ", 1)
	_, logs := startGatehouse(t, bin, writeOpsConfig(t, dir, cfg))
	addr := fmt.Sprintf("127.0.0.1:%d", port)

	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := client.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not up: %v\n%s", err, logs.String())
		}
	}

	// ask sends a keep-alive request on c and reads the status line, waiting
	// at most wait.
	ask := func(c net.Conn, r *bufio.Reader, wait time.Duration) (string, error) {
		c.SetDeadline(time.Now().Add(wait))
		if _, err := fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: gatehouse\r\n\r\n"); err != nil {
			return "", err
		}
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		return resp.Status, nil
	}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	var readers []*bufio.Reader
	for i := range 3 {
		c, err := net.Dial("tcp", addr) // the kernel completes the handshake even when not accepted
		if err != nil {
			t.Fatal(err)
		}
		conns, readers = append(conns, c), append(readers, bufio.NewReader(c))
		if i < 2 {
			if status, err := ask(c, readers[i], 5*time.Second); err != nil || status != "200 OK" {
				t.Fatalf("connection %d: %q %v", i+1, status, err)
			}
		}
	}
	// The third connection's request is not answered while two are open.
	c3, r3 := conns[2], readers[2]
	if status, err := ask(c3, r3, time.Second); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("third connection answered while two were open: %q %v", status, err)
	}
	// Once one closes, it is accepted and its waiting request answered.
	conns[0].Close()
	c3.SetDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(r3, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("third connection after one closed: %v %v\n%s", resp, err, logs.String())
	}
	resp.Body.Close()
}

// TestValidateWarnsRealIPPosZero: validate accepts real_ip_header with
// real_ip_pos 0 but warns, naming the line and key; with -1 it does not.
func TestValidateWarnsRealIPPosZero(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "htpasswd"), nil, 0o600)
	tests := []struct {
		name, server string
		want         string // "" for no warning
	}{
		{"pos left unset", "real_ip_header: X-Forwarded-For", "cfg.yml:1: server.real_ip_header: real_ip_pos 0 takes the first entry of X-Forwarded-For"},
		{"pos 0 written", "real_ip_header: X-Forwarded-For, real_ip_pos: 0", "cfg.yml:1: server.real_ip_pos: real_ip_pos 0"},
		{"pos -1", "real_ip_header: X-Forwarded-For, real_ip_pos: -1", ""},
		{"no header", "max_connections: 100", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "cfg.yml")
			cfg := strings.Replace(opsConfig(t, dir, 1, ""), "server: {", "server: {"+tc.server+", ", 1)
			os.WriteFile(path, []byte(cfg), 0o600)
			var out, errb bytes.Buffer
			if code := run([]string{"validate", path}, nil, &out, &errb); code != 0 {
				t.Fatalf("exit %d\n%s", code, errb.String())
			}
			if tc.want == "" {
				if strings.Contains(errb.String(), "warning") {
					t.Fatalf("unexpected warning:\n%s", errb.String())
				}
				return
			}
			if !strings.Contains(errb.String(), "warning: ") || !strings.Contains(errb.String(), tc.want) {
				t.Fatalf("stderr lacks a warning %q:\n%s", tc.want, errb.String())
			}
		})
	}
}
