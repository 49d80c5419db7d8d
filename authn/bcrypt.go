package authn

import (
	"crypto/rand"
	"fmt"

	"golang.org/x/crypto/bcrypt"
)

// checkBcrypt reports whether hash is a bcrypt hash and returns its cost.
// It accepts the $2a$, $2b$ and $2y$ prefixes that htpasswd -B and other
// tools write.
func checkBcrypt(hash string) (int, error) {
	if len(hash) < 4 || hash[0] != '$' || hash[1] != '2' {
		return 0, fmt.Errorf("not a bcrypt hash (generate one with `gatehouse hash` or `htpasswd -nB USER`)")
	}
	cost, err := bcrypt.Cost([]byte(hash))
	if err != nil {
		return 0, fmt.Errorf("not a valid bcrypt hash: %w", err)
	}
	return cost, nil
}

// FakeHash is a bcrypt hash of a random secret. Comparing a password with it
// costs the same as checking a real hash of the same cost and never
// succeeds, so an unknown account takes as long as a wrong password.
type FakeHash struct {
	hash []byte
}

// NewFakeHash makes a FakeHash of the given bcrypt cost (clamped to bcrypt's
// valid range).
func NewFakeHash(cost int) (*FakeHash, error) {
	cost = max(bcrypt.MinCost, min(cost, bcrypt.MaxCost))
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("authn: fake hash: %w", err)
	}
	h, err := bcrypt.GenerateFromPassword(secret[:24], cost)
	if err != nil {
		return nil, fmt.Errorf("authn: fake hash: %w", err)
	}
	return &FakeHash{hash: h}, nil
}

// Compare spends one bcrypt comparison on password and discards the result.
func (f *FakeHash) Compare(password string) {
	_ = bcrypt.CompareHashAndPassword(f.hash, []byte(password))
}
