//go:build pkcs11

package token

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/ThalesGroup/crypto11"
)

// pkcs11PoolWait bounds the wait for a free session of the token: a
// signature abandoned at its deadline keeps its session until the module
// answers, and later ones must not queue behind it for ever.
const pkcs11PoolWait = 10 * time.Second

// minRSABits is the least RSA modulus a key in an HSM may have.
const minRSABits = 2048

// openPKCS11 opens the key pair a pkcs11: reference names, through the
// module it names, logged in with the PIN read from its pin-source file.
//
// crypto11 loads and initialises each module once per process and counts
// its users, so a reload can open the same token again while the signer it
// replaces still holds it open; closing either leaves the other working
// (TestPKCS11TwoSignersOneToken). While one is open the token stays logged
// in, and a PKCS #11 module then accepts any further login without checking
// the PIN; logins tracks the PIN the token checked, and a reload that
// brings another PIN is refused (a restart checks it).
func openPKCS11(ctx context.Context, ref string) (*externalKey, error) {
	u, err := parsePKCS11URI(ref)
	if err != nil {
		return nil, err
	}
	name := u.name()
	if _, err := os.Stat(u.modulePath); err != nil {
		return nil, fmt.Errorf("token: key %s: PKCS #11 module: %w", name, err)
	}
	pin, err := readPIN(name, u.pinFile)
	if err != nil {
		return nil, err
	}
	type result struct {
		k   *externalKey
		err error
	}
	done := make(chan result, 1)
	go func() {
		k, err := openPKCS11Key(u, name, pin)
		done <- result{k, err}
	}()
	select {
	case r := <-done:
		return r.k, r.err
	case <-ctx.Done():
		go func() { // close what the module opens once it answers
			if r := <-done; r.k != nil {
				_ = r.k.Close()
			}
		}()
		return nil, fmt.Errorf("token: key %s: opening through %s: %w", name, u.modulePath, ctx.Err())
	}
}

// openPKCS11Key logs in to the token and finds the key pair. It may block
// as long as the module does.
func openPKCS11Key(u *pkcs11URI, name, pin string) (*externalKey, error) {
	cfg := &crypto11.Config{
		Path:            u.modulePath,
		TokenLabel:      u.token,
		TokenSerial:     u.serial,
		SlotNumber:      u.slot,
		Pin:             pin,
		PoolWaitTimeout: pkcs11PoolWait,
	}
	login := u.modulePath + "\x00" + tokenSelector(name)
	if err := logins.check(login, pin); err != nil {
		return nil, fmt.Errorf("token: key %s: %w", name, err)
	}
	c, err := crypto11.Configure(cfg)
	if err != nil {
		return nil, fmt.Errorf("token: key %s: opening the token through %s: %w", name, u.modulePath, describePKCS11Error(err))
	}
	if err := logins.add(login, pin); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("token: key %s: %w", name, err)
	}
	var label []byte
	if u.object != "" {
		label = []byte(u.object)
	}
	signer, err := c.FindKeyPair(u.id, label)
	if err == nil && signer == nil || err != nil && strings.Contains(err.Error(), "was not found") {
		err = errNoKeyPair
	}
	if err == nil {
		err = checkPKCS11Key(signer.Public())
	}
	if err != nil {
		_ = c.Close()
		logins.remove(login)
		return nil, fmt.Errorf("token: key %s: %w", name, err)
	}
	// Closing twice would drop a second reference to the module that a
	// signer sharing it still holds: close once.
	var once sync.Once
	closeOnce := func() error {
		var err error
		once.Do(func() {
			err = c.Close()
			logins.remove(login)
		})
		return err
	}
	return &externalKey{signer: signer, kind: "pkcs11", name: name, close: closeOnce}, nil
}

// checkPKCS11Key accepts the keys registries verify: ECDSA on P-256, P-384
// or P-521, and RSA of at least 2048 bits.
func checkPKCS11Key(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
		return fmt.Errorf("unsupported ECDSA curve %s: use P-256, P-384 or P-521", k.Curve.Params().Name)
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return fmt.Errorf("RSA key of %d bits: at least %d are required", k.N.BitLen(), minRSABits)
		}
		return nil
	}
	return fmt.Errorf("unsupported key type %T: use an ECDSA (P-256, P-384, P-521) or RSA (2048 bits or more) key pair", pub)
}

// describePKCS11Error adds what the usual causes mean to an error of the
// module.
func describePKCS11Error(err error) error {
	msg := err.Error()
	switch {
	case containsAny(msg, "CKR_PIN_INCORRECT", "CKR_PIN_LEN_RANGE"):
		return fmt.Errorf("%w (the PIN in the pin-source file is wrong)", err)
	case containsAny(msg, "CKR_PIN_LOCKED"):
		return fmt.Errorf("%w (the user PIN is locked: unlock it with the SO PIN)", err)
	case containsAny(msg, "could not find PKCS#11 token"):
		return fmt.Errorf("%w (no initialised token with that label, serial or slot: list them with pkcs11-tool --module … --list-slots)", err)
	case containsAny(msg, "failed to open module"):
		return fmt.Errorf("%w (the module could not be loaded: is it for this architecture, and are its own libraries present?)", err)
	}
	return err
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// tokenSelector is the token part of a key's name ("token=…", "serial=…"
// or "slot-id=…").
func tokenSelector(name string) string {
	sel, _, _ := strings.Cut(strings.TrimPrefix(name, "pkcs11:"), ";")
	return sel
}

// pkcs11Logins remembers, per module and token, the PIN the token checked
// when the first key still open logged in, and how many keys are open.
type pkcs11Logins struct {
	mu   sync.Mutex
	open map[string]pkcs11Login
}

type pkcs11Login struct {
	pin [sha256.Size]byte
	n   int
}

// logins is package-level on purpose, the one exception to the rule: a
// PKCS #11 module and its login are per process (crypto11 keeps one module
// per path for the whole process), so what was logged in must be known
// across every Signer of the process.
var logins = &pkcs11Logins{open: map[string]pkcs11Login{}}

var errNoKeyPair = errors.New("no key pair with that object (CKA_LABEL) and id (CKA_ID) on the token: list them with pkcs11-tool --module … --list-objects (a private key is found with the public key of the same CKA_ID)")

var errPINChanged = errors.New("the PIN differs from the one the token was logged in with by the key still in use; PKCS #11 cannot check a PIN while the token is logged in, so restart gatehouse to use another PIN")

// check fails when the token is logged in with another PIN.
func (l *pkcs11Logins) check(login, pin string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.checkLocked(login, pin)
}

func (l *pkcs11Logins) checkLocked(login, pin string) error {
	if cur, ok := l.open[login]; ok {
		if sum := sha256.Sum256([]byte(pin)); subtle.ConstantTimeCompare(sum[:], cur.pin[:]) != 1 {
			return errPINChanged
		}
	}
	return nil
}

// add counts a key opened with pin; it fails, as check does, when another
// key logged in with another PIN meanwhile.
func (l *pkcs11Logins) add(login, pin string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.checkLocked(login, pin); err != nil {
		return err
	}
	cur := l.open[login]
	cur.pin, cur.n = sha256.Sum256([]byte(pin)), cur.n+1
	l.open[login] = cur
	return nil
}

// remove uncounts a closed key.
func (l *pkcs11Logins) remove(login string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if cur := l.open[login]; cur.n > 1 {
		cur.n--
		l.open[login] = cur
	} else {
		delete(l.open, login)
	}
}

// readPIN reads the user PIN from path, without surrounding white space.
// Its errors never contain the PIN.
func readPIN(name, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("token: key %s: reading the PIN: %w", name, err)
	}
	pin := strings.TrimSpace(string(b))
	if pin == "" {
		return "", fmt.Errorf("token: key %s: the PIN file %s is empty", name, path)
	}
	return pin, nil
}
