package token_test

import (
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/token"
)

// Example loads the `token:` section (here generating a development key),
// builds a Signer once and issues a token for a push request.
func Example() {
	dir, err := os.MkdirTemp("", "gatehouse-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	cfg := &token.Config{
		Issuer:            "Acme auth server",
		Expiration:        900,
		Certificate:       filepath.Join(dir, "token.pem"),
		Key:               filepath.Join(dir, "token.key"),
		GenerateIfMissing: true,
	}
	if err := cfg.Validate(); err != nil {
		log.Fatal(err)
	}
	now := time.Date(2026, time.June, 1, 12, 0, 0, 0, time.UTC)
	signer, err := cfg.NewSigner(
		token.WithClock(func() time.Time { return now }),
		token.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
	)
	if err != nil {
		log.Fatal(err)
	}

	tok, err := signer.Issue("alice", "registry.example.com", []token.Access{
		{Type: "repository", Name: "alice/app", Actions: []string{"push", "pull"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(tok.Raw, ".")[1])
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(signer.Algorithm(), len(strings.Split(signer.KeyID(), ":")), "kid groups")
	fmt.Println(tok.IssuedAt.Format(time.RFC3339), tok.ExpiresAt.Sub(tok.IssuedAt))
	fmt.Println(strings.Replace(string(payload), tok.ID, "…", 1))
	// Output:
	// ES256 12 kid groups
	// 2026-06-01T12:00:00Z 15m0s
	// {"iss":"Acme auth server","sub":"alice","aud":"registry.example.com","exp":1780316100,"nbf":1780315190,"iat":1780315200,"jti":"…","access":[{"type":"repository","name":"alice/app","actions":["pull","push"]}]}
}
