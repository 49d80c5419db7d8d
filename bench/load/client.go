package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// waitReady asks for a token until the server answers with the expected
// one (at most 15 s), so a broken case fails instead of measuring errors.
func waitReady(ctx context.Context, url string, c caseSpec, exited <-chan struct{}, logPath string) error {
	deadline := time.Now().Add(15 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("the server exited at startup:\n%s", log)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if last = checkToken(url, c); last == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no valid token within 15 s: %v", last)
}

// checkToken fetches one token and checks its subject and access claim.
func checkToken(url string, c caseSpec) error {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	var answer struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(body, &answer); err != nil {
		return err
	}
	parts := strings.Split(answer.Token, ".")
	if len(parts) != 3 {
		return fmt.Errorf("malformed token %q", answer.Token)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return err
	}
	var claims struct {
		Sub    string `json:"sub"`
		Access []struct {
			Type, Name string
			Actions    []string
		} `json:"access"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return err
	}
	var got []string
	for _, a := range claims.Access {
		got = append(got, a.Type+":"+a.Name+":"+strings.Join(a.Actions, ","))
	}
	if claims.Sub != c.wantSub || strings.Join(got, " ") != c.wantGrant {
		return fmt.Errorf("token for %q grants %q, want %q for %q", claims.Sub, got, c.wantGrant, c.wantSub)
	}
	return nil
}

// driven is what one drive measured.
type driven struct {
	lat      []time.Duration // latencies of the successful requests
	errs     int64
	firstErr string
	elapsed  time.Duration
}

// drive runs conns closed-loop clients over the shared Transport tr for
// duration. Only requests that start and end within it count.
func drive(ctx context.Context, tr *http.Transport, url, user, password string, conns int, duration time.Duration) driven {
	var (
		stop    atomic.Bool
		nerr    atomic.Int64
		errOnce sync.Once
		wg      sync.WaitGroup
		perConn = make([][]time.Duration, conns)
		out     driven
	)
	start := time.Now()
	for i := range conns {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			if user != "" {
				req.SetBasicAuth(user, password)
			}
			rec := make([]time.Duration, 0, 1<<12)
			for !stop.Load() {
				t := time.Now()
				resp, err := tr.RoundTrip(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				d := time.Since(t)
				if stop.Load() {
					break
				}
				if err != nil {
					nerr.Add(1)
					errOnce.Do(func() { out.firstErr = err.Error() })
					continue
				}
				rec = append(rec, d)
			}
			perConn[i] = rec
		})
	}
	sleep(ctx, duration)
	stop.Store(true)
	out.elapsed = time.Since(start)
	wg.Wait()
	for _, r := range perConn {
		out.lat = append(out.lat, r...)
	}
	out.errs = nerr.Load()
	return out
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
