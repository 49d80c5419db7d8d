package authn

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse/gatehouse/internal/cfgerr"
)

// HtpasswdConfig is the `htpasswd_auth:` section: an Apache htpasswd file
// with bcrypt entries, the format the registry's own htpasswd auth reads.
//
//	htpasswd_auth:
//	  path: /auth/htpasswd     # lines "user:$2y$…", made with htpasswd -nB user
//
// Users from the file carry no labels. Other hash formats (MD5 "$apr1$",
// SHA "{SHA}", crypt) are rejected at load with the line that holds them.
type HtpasswdConfig struct {
	Path string `yaml:"path"`
}

// Validate checks the section without reading the file.
func (c *HtpasswdConfig) Validate() error {
	if c.Path == "" {
		return cfgerr.At(errors.New("path is required"), "path")
	}
	return nil
}

// Htpasswd authenticates the users of an htpasswd file, read once at load.
type Htpasswd struct {
	path             string
	users            map[string][]byte
	minCost, maxCost int
}

var (
	_ Authenticator = (*Htpasswd)(nil)
	_ BcryptCoster  = (*Htpasswd)(nil)
	_ Knower        = (*Htpasswd)(nil)
)

// NewHtpasswd reads and checks the file named by cfg. Problems are placed at
// the "path" key and name the file's line.
func NewHtpasswd(cfg HtpasswdConfig) (*Htpasswd, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(cfg.Path)
	if err != nil {
		return nil, cfgerr.At(fmt.Errorf("htpasswd: %w", err), "path")
	}
	h, err := parseHtpasswd(cfg.Path, data)
	if err != nil {
		return nil, cfgerr.At(err, "path")
	}
	return h, nil
}

func parseHtpasswd(path string, data []byte) (*Htpasswd, error) {
	h := &Htpasswd{path: path, users: map[string][]byte{}}
	var errs []error
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 64*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		switch {
		case !ok || user == "":
			errs = append(errs, fmt.Errorf("htpasswd %s:%d: want \"user:hash\"", path, n))
			continue
		case h.users[user] != nil:
			errs = append(errs, fmt.Errorf("htpasswd %s:%d: user %q appears twice", path, n, user))
			continue
		}
		cost, err := checkBcrypt(hash)
		if err != nil {
			errs = append(errs, fmt.Errorf("htpasswd %s:%d: user %q: %w; only bcrypt entries are supported (htpasswd -B)", path, n, user, err))
			continue
		}
		h.users[user] = []byte(hash)
		h.maxCost = max(h.maxCost, cost)
		if h.minCost == 0 || cost < h.minCost {
			h.minCost = cost
		}
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("htpasswd %s: %w", path, err))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return h, nil
}

// Name returns "htpasswd".
func (h *Htpasswd) Name() string { return "htpasswd" }

// MaxBcryptCost returns the highest bcrypt cost in the file.
func (h *Htpasswd) MaxBcryptCost() int { return h.maxCost }

// MinBcryptCost returns the lowest bcrypt cost in the file.
func (h *Htpasswd) MinBcryptCost() int { return h.minCost }

// Knows reports whether the file lists account.
func (h *Htpasswd) Knows(account string) bool {
	_, ok := h.users[account]
	return ok && account != ""
}

// Authenticate checks account and password against the file's entries.
func (h *Htpasswd) Authenticate(ctx context.Context, account, password string) (Account, error) {
	hash, ok := h.users[account]
	if !ok || account == "" {
		return Account{}, ErrNoMatch
	}
	if err := ctx.Err(); err != nil {
		return Account{}, fmt.Errorf("%w: htpasswd: %w", ErrUnavailable, err)
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil {
		return Account{}, ErrWrongPassword
	}
	return Account{Name: account, Credential: string(hash)}, nil
}

// Lookup reports whether the file lists account; htpasswd users carry no
// labels.
func (h *Htpasswd) Lookup(ctx context.Context, account string) (Account, error) {
	hash, ok := h.users[account]
	if !ok || account == "" {
		return Account{}, ErrNoMatch
	}
	return Account{Name: account, Credential: string(hash)}, nil
}
