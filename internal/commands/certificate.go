package commands

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/gatehouse/gatehouse/token"
)

// Certificate makes a self-signed certificate for a token-signing key and
// writes it to a new file: args are KEY OUT and the flags --cn NAME and
// --days N (default 365). KEY is a PEM key file or a key reference
// (awskms:…, pkcs11:…); the key service signs the certificate, so the key
// never leaves it. OUT must not exist.
func Certificate(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("certificate", flag.ContinueOnError)
	flags.SetOutput(stderr)
	cn := flags.String("cn", "", "the certificate's subject common name (default \"gatehouse token signer\")")
	days := flags.Int("days", 365, "validity in days (at most 3650)")
	flags.Usage = func() {
		fmt.Fprintln(stderr, "usage: gatehouse certificate KEY OUT [--cn NAME] [--days N]")
		flags.PrintDefaults()
	}
	pos, err := parseInterleaved(flags, args)
	if err != nil {
		return 2
	}
	if len(pos) != 2 {
		fmt.Fprintln(stderr, "gatehouse certificate: want KEY and OUT")
		flags.Usage()
		return 2
	}
	if *days < 1 || *days > 3650 {
		fmt.Fprintln(stderr, "gatehouse certificate: --days must be between 1 and 3650")
		return 2
	}
	key, out := pos[0], pos[1]
	if _, err := os.Stat(out); !errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(stderr, "gatehouse certificate: %s exists; choose a new file\n", out)
		return 1
	}
	pem, err := token.SelfSignedCertificate(key, *cn, time.Duration(*days)*24*time.Hour, time.Now())
	if err != nil {
		fmt.Fprintln(stderr, "gatehouse certificate:", err)
		return 1
	}
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		fmt.Fprintln(stderr, "gatehouse certificate:", err)
		return 1
	}
	_, err = f.Write(pem)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(out) // ours: created above
		fmt.Fprintln(stderr, "gatehouse certificate:", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: self-signed certificate for %s, valid %d days\n", out, key, *days)
	return 0
}
