package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServeUnixSocket runs the binary with server.net: unix, over a stale
// socket file left by an earlier run, and gets a token through the socket.
func TestServeUnixSocket(t *testing.T) {
	dir := t.TempDir()
	bin := gatehouseBinary(t)
	sock := filepath.Join(dir, "gh.sock")
	// A stale socket: bound, then abandoned without removing the file.
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()

	cfg := strings.Replace(opsConfig(t, dir, 0, ""), `server: {addr: "127.0.0.1:0"}`, fmt.Sprintf("server: {net: unix, addr: %q}", sock), 1)
	_, logs := startGatehouse(t, bin, writeOpsConfig(t, dir, cfg))

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	var resp *http.Response
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		req, _ := http.NewRequest(http.MethodGet, "http://gatehouse/auth?service=registry&scope=repository:alice/a:pull", nil)
		req.SetBasicAuth("alice", "alicepw")
		if resp, err = client.Do(req); err == nil {
			break
		}
	}
	if resp == nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("no token over the unix socket: %v %v\n%s", resp, err, logs.String())
	}
	resp.Body.Close()
}
