package config

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/gatehouse/gatehouse/internal/cfgerr"
)

// Duration is a length of time written as a Go duration ("90s", "5m") or
// as a whole number of seconds.
type Duration struct {
	time.Duration
	set bool
}

// UnmarshalYAML accepts "1m30s" or 90.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want a duration such as \"60s\"", n.Line)}}
	}
	if secs, err := strconv.ParseInt(n.Value, 10, 64); err == nil {
		d.Duration, d.set = time.Duration(secs)*time.Second, true
		return nil
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want a duration such as \"60s\", got %q", n.Line, n.Value)}}
	}
	d.Duration, d.set = v, true
	return nil
}

// Or returns d, or def when d was not written.
func (d Duration) Or(def time.Duration) time.Duration {
	if d.set {
		return d.Duration
	}
	return def
}

// ByteSize is an amount of memory written as a number of bytes (33554432)
// or with a binary unit: "512KiB", "32MiB", "1GiB".
type ByteSize int64

// byteUnits are the units ByteSize accepts, longest first.
var byteUnits = []struct {
	suffix string
	shift  uint
}{{"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"B", 0}}

// UnmarshalYAML accepts 33554432, "32MiB" or "32 MiB".
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	bad := func() error {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want a size such as 33554432 or \"32MiB\", got %q", n.Line, n.Value)}}
	}
	if n.Kind != yaml.ScalarNode {
		return bad()
	}
	num, shift := strings.TrimSpace(n.Value), uint(0)
	for _, u := range byteUnits {
		if v, ok := strings.CutSuffix(num, u.suffix); ok {
			num, shift = strings.TrimSpace(v), u.shift
			break
		}
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v > math.MaxInt64>>shift || v < math.MinInt64>>shift {
		return bad()
	}
	*b = ByteSize(v << shift)
	return nil
}

// Cache is the `cache:` section: the credential cache that makes a repeat
// login cost a signature instead of a bcrypt comparison or an LDAP bind,
// and the grant cache in front of it that remembers whole GET answers.
//
//	cache:
//	  ttl: 60s             # how long a successful check is remembered; 0 turns the cache off
//	  max_entries: 10000   # bound on remembered checks, and on remembered grants
//	  max_bytes: 32MiB     # bound on the memory the grant cache holds; a grant over max_bytes/1024 is not remembered
type Cache struct {
	TTL        Duration `yaml:"ttl"`
	MaxEntries int      `yaml:"max_entries"`
	MaxBytes   ByteSize `yaml:"max_bytes"`
}

// Defaults and limits of the cache section.
const (
	DefaultCacheTTL        = 60 * time.Second
	DefaultCacheMaxEntries = 10000
	DefaultCacheMaxBytes   = 32 << 20
	// MinCacheMaxBytes is the smallest max_bytes accepted: below it the
	// grant cache could hold too few entries to be of use.
	MinCacheMaxBytes = 64 << 10
)

// Bytes returns max_bytes or its default.
func (c Cache) Bytes() int64 {
	if c.MaxBytes == 0 {
		return DefaultCacheMaxBytes
	}
	return int64(c.MaxBytes)
}

// Entries returns max_entries or its default.
func (c Cache) Entries() int {
	if c.MaxEntries == 0 {
		return DefaultCacheMaxEntries
	}
	return c.MaxEntries
}

func (c *Cache) validate() error {
	var errs []error
	if c.TTL.Duration < 0 {
		errs = append(errs, cfgerr.At(errors.New("must not be negative (0 turns the cache off)"), "ttl"))
	}
	if c.MaxEntries < 0 {
		errs = append(errs, cfgerr.At(errors.New("must not be negative"), "max_entries"))
	}
	if c.MaxBytes < 0 || (c.MaxBytes > 0 && c.MaxBytes < MinCacheMaxBytes) {
		errs = append(errs, cfgerr.At(fmt.Errorf("must be at least %d (64KiB); leave it out for the default, 32MiB", MinCacheMaxBytes), "max_bytes"))
	}
	return errors.Join(errs...)
}

// Limits is the `limits:` section: bounds that keep a flood of logins from
// starving everything else.
//
//	limits:
//	  concurrent_checks: 2   # password checks (bcrypt, LDAP binds) at once; default GOMAXPROCS
//	  check_wait: 2s         # longest wait for a slot; beyond it, 503 with Retry-After
type Limits struct {
	ConcurrentChecks int      `yaml:"concurrent_checks"`
	CheckWait        Duration `yaml:"check_wait"`
}

// DefaultCheckWait is how long a password check may wait for a slot.
const DefaultCheckWait = 2 * time.Second

// Checks returns concurrent_checks or its default, GOMAXPROCS.
func (l Limits) Checks() int {
	if l.ConcurrentChecks == 0 {
		return runtime.GOMAXPROCS(0)
	}
	return l.ConcurrentChecks
}

func (l *Limits) validate() error {
	var errs []error
	if l.ConcurrentChecks < 0 {
		errs = append(errs, cfgerr.At(errors.New("must be positive"), "concurrent_checks"))
	}
	if l.CheckWait.Duration < 0 {
		errs = append(errs, cfgerr.At(errors.New("must not be negative"), "check_wait"))
	}
	return errors.Join(errs...)
}

// Throttle is the `throttle:` section: failed logins are counted per
// (account, client) and per client; once a limit is reached, further
// attempts from that key are answered 429 before any password is checked,
// for a delay that doubles with every further failure, up to max_delay.
// A client is an IPv4 address (an IPv4-mapped IPv6 address counts as IPv4)
// or an IPv6 prefix of ipv6_prefix bits; an account is its case-folded
// name. Password checks in flight count as failures until they end, so
// concurrent guesses reach the check at most the limit's number of times.
//
//	throttle:
//	  enabled: true                  # default true
//	  account_ip_failures: 5         # failures of one account from one client before it is delayed
//	  ip_failures: 50                # failures from one client, any account, before the client is delayed
//	  window: 15m                    # failures older than this (since the last one) are forgotten
//	  delay: 1s                      # first delay at a limit; doubles with each further failure
//	  max_delay: 15m
//	  max_tracked: 100000            # bound on the keys remembered
//	  ipv6_prefix: 64                # IPv6 clients are counted per prefix of this length, 1 to 128
//	  store: {type: redis, addrs: ["redis:6379"]}  # optional: counts shared by replicas (ThrottleStore)
type Throttle struct {
	Enabled           *bool          `yaml:"enabled"`
	AccountIPFailures int            `yaml:"account_ip_failures"`
	IPFailures        int            `yaml:"ip_failures"`
	Window            Duration       `yaml:"window"`
	Delay             Duration       `yaml:"delay"`
	MaxDelay          Duration       `yaml:"max_delay"`
	MaxTracked        int            `yaml:"max_tracked"`
	IPv6Prefix        *int           `yaml:"ipv6_prefix"`
	Store             *ThrottleStore `yaml:"store"`
}

// Throttle defaults.
const (
	DefaultAccountIPFailures = 5
	DefaultIPFailures        = 50
	DefaultThrottleWindow    = 15 * time.Minute
	DefaultThrottleDelay     = time.Second
	DefaultThrottleMaxDelay  = 15 * time.Minute
	DefaultThrottleTracked   = 100000
	DefaultIPv6Prefix        = 64
)

// On reports whether throttling is enabled (the default).
func (t Throttle) On() bool { return t.Enabled == nil || *t.Enabled }

// Limits returns the per-(account, IP) and per-IP failure limits.
func (t Throttle) Limits() (accountIP, ip int) {
	return orInt(t.AccountIPFailures, DefaultAccountIPFailures), orInt(t.IPFailures, DefaultIPFailures)
}

// Tracked returns max_tracked or its default.
func (t Throttle) Tracked() int { return orInt(t.MaxTracked, DefaultThrottleTracked) }

// IPv6PrefixLength returns ipv6_prefix or its default: the leading bits of
// an IPv6 address that name one client.
func (t Throttle) IPv6PrefixLength() int {
	if t.IPv6Prefix == nil {
		return DefaultIPv6Prefix
	}
	return *t.IPv6Prefix
}

func orInt(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func (t *Throttle) validate() error {
	var errs []error
	for key, v := range map[string]int{"account_ip_failures": t.AccountIPFailures, "ip_failures": t.IPFailures, "max_tracked": t.MaxTracked} {
		if v < 0 {
			errs = append(errs, cfgerr.At(errors.New("must be positive"), key))
		}
	}
	for key, d := range map[string]Duration{"window": t.Window, "delay": t.Delay, "max_delay": t.MaxDelay} {
		if d.set && d.Duration <= 0 {
			errs = append(errs, cfgerr.At(errors.New("must be positive"), key))
		}
	}
	if p := t.IPv6Prefix; p != nil && (*p < 1 || *p > 128) {
		errs = append(errs, cfgerr.At(errors.New("must be between 1 and 128 (bits of an IPv6 address)"), "ipv6_prefix"))
	}
	if t.Delay.Or(DefaultThrottleDelay) > t.MaxDelay.Or(DefaultThrottleMaxDelay) {
		errs = append(errs, cfgerr.At(errors.New("must not exceed max_delay"), "delay"))
	}
	if t.Store != nil {
		errs = append(errs, cfgerr.At(t.Store.validate(), "store"))
	}
	return errors.Join(errs...)
}
