package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/gatehouse/gatehouse/token"
)

// ceilingCommand is the hidden subcommand that runs the ceiling server.
const ceilingCommand = "ceiling-serve"

// Fixed claims of every ceiling token: the shape of the static user's
// token in the Gatehouse cases (one repository, two actions).
var ceilingAccess = []token.Access{{Type: "repository", Name: "alice/app", Actions: []string{"pull", "push"}}}

// serveCeiling is the bare server the Gatehouse cases are compared with:
// one token per request, signed by the token package's Signer with the
// same key, issuer, expiration, kid and x5c as Gatehouse, written in the
// same JSON shape with the same headers (a token response is not to be
// cached, RFC 6749 §5.1, so Gatehouse and the ceiling both say no-store);
// no parsing, authentication, ACL, metrics or logging.
func serveCeiling(args []string) int {
	fs := flag.NewFlagSet(ceilingCommand, flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	cert := fs.String("cert", "", "certificate PEM")
	key := fs.String("key", "", "private key PEM")
	issuer := fs.String("issuer", benchIssuer, "iss claim")
	expiration := fs.Int64("expiration", benchExpiration, "token lifetime, seconds")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	tc := token.Config{Issuer: *issuer, Expiration: *expiration, Certificate: *cert, Key: *key}
	signer, err := tc.NewSigner(token.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "ceiling:", err)
		return 1
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, err := signer.Issue("alice", "registry.example.com", ceilingAccess)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		exp := strconv.FormatInt(int64(tok.ExpiresAt.Sub(tok.IssuedAt)/time.Second), 10)
		body := make([]byte, 0, 2*len(tok.Raw)+100)
		body = append(body, `{"token":"`...)
		body = append(body, tok.Raw...)
		body = append(body, `","access_token":"`...)
		body = append(body, tok.Raw...)
		body = append(body, `","expires_in":`...)
		body = append(body, exp...)
		body = append(body, `,"issued_at":"`...)
		body = tok.IssuedAt.AppendFormat(body, time.RFC3339)
		body = append(body, `"}`...)
		hd := w.Header()
		hd.Set("Content-Type", "application/json")
		hd.Set("Cache-Control", "no-store") // RFC 6749 §5.1: a token response must not be cached
		hd.Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	})
	srv := &http.Server{Addr: *addr, Handler: h, ReadHeaderTimeout: 5 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "ceiling:", err)
		return 1
	}
	return 0
}
