package config

import (
	"errors"
	"strconv"
	"time"

	"github.com/gatehouse/gatehouse/internal/cfgerr"
)

// ThrottleStore is the optional `throttle.store:` section: a Redis or
// Valkey server (standalone, Sentinel or Cluster) where the replicas of one
// deployment count failed logins together, so that N replicas give an
// attacker the budget of one. Checks in flight stay counted in each
// replica. When the store does not answer within timeout, the replica
// counts in its own memory until the store answers again (throttling fails
// open to per-replica counts; requests are still answered). The store also
// shares the sign-in credentials' revalidations (a rotated refresh token,
// sealed), so that any replica finds the latest (docs/sign-in.md).
//
//	throttle:
//	  store:
//	    type: redis                  # the only type: Redis 6+ or Valkey
//	    addrs: ["redis:6379"]        # one: standalone; several: Cluster; with master_name: Sentinel's addresses
//	    master_name: ""              # Sentinel: the name of the primary
//	    username: ""                 # ACL user (Redis 6+)
//	    password_file: /run/secrets/redis-password
//	    db: 0                        # standalone and Sentinel only
//	    tls: false
//	    ca_certificate: ""           # PEM CA for tls; default: the system's
//	    timeout: 50ms                # bound on each call before falling back
type ThrottleStore struct {
	Type          string   `yaml:"type"`
	Addrs         []string `yaml:"addrs"`
	MasterName    string   `yaml:"master_name"`
	Username      string   `yaml:"username"`
	PasswordFile  string   `yaml:"password_file"`
	DB            int      `yaml:"db"`
	TLS           bool     `yaml:"tls"`
	CACertificate string   `yaml:"ca_certificate"`
	Timeout       Duration `yaml:"timeout"`
}

// DefaultThrottleStoreTimeout bounds each call to the throttle store.
const DefaultThrottleStoreTimeout = 50 * time.Millisecond

// Cluster reports whether the store is a Redis Cluster (several addresses,
// no Sentinel).
func (s *ThrottleStore) Cluster() bool { return len(s.Addrs) > 1 && s.MasterName == "" }

func (s *ThrottleStore) validate() error {
	var errs []error
	if s.Type != "redis" {
		errs = append(errs, cfgerr.At(errors.New(`must be "redis" (Redis or Valkey)`), "type"))
	}
	if len(s.Addrs) == 0 {
		errs = append(errs, cfgerr.At(errors.New("at least one host:port is required"), "addrs"))
	}
	for i, a := range s.Addrs {
		if a == "" {
			errs = append(errs, cfgerr.At(errors.New("empty address"), "addrs", strconv.Itoa(i)))
		}
	}
	switch {
	case s.DB < 0:
		errs = append(errs, cfgerr.At(errors.New("must not be negative"), "db"))
	case s.DB != 0 && s.Cluster():
		errs = append(errs, cfgerr.At(errors.New("a Redis Cluster has only db 0"), "db"))
	}
	if s.CACertificate != "" && !s.TLS {
		errs = append(errs, cfgerr.At(errors.New("needs tls: true"), "ca_certificate"))
	}
	if s.Timeout.set && s.Timeout.Duration <= 0 {
		errs = append(errs, cfgerr.At(errors.New("must be positive"), "timeout"))
	}
	return errors.Join(errs...)
}
