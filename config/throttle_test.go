package config

import (
	"strings"
	"testing"
)

func TestThrottleIPv6Prefix(t *testing.T) {
	tests := []struct {
		name    string
		section string // appended to base; line 17
		want    int    // IPv6PrefixLength; 0: a problem at throttle.ipv6_prefix
	}{
		{"default /64", "", 64},
		{"a /48", "throttle: {ipv6_prefix: 48}\n", 48},
		{"exact addresses", "throttle: {ipv6_prefix: 128}\n", 128},
		{"the shortest", "throttle: {ipv6_prefix: 1}\n", 1},
		{"zero is refused, not taken for the default", "throttle: {ipv6_prefix: 0}\n", 0},
		{"longer than an address", "throttle: {ipv6_prefix: 129}\n", 0},
		{"negative", "throttle: {ipv6_prefix: -64}\n", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, perr := parse(t, base+tc.section)
			if tc.want != 0 {
				if perr != nil {
					t.Fatal(perr)
				}
				if got := c.Throttle.IPv6PrefixLength(); got != tc.want {
					t.Fatalf("IPv6PrefixLength() = %d, want %d", got, tc.want)
				}
				return
			}
			if perr == nil || len(perr.Problems) != 1 {
				t.Fatalf("want one problem, got %v", perr)
			}
			p := perr.Problems[0]
			if p.Key != "throttle.ipv6_prefix" || !strings.HasPrefix(p.String(), "auth_config.yml:17:") || !strings.Contains(p.Msg, "between 1 and 128") {
				t.Fatalf("problem %q (key %q)", p, p.Key)
			}
		})
	}
}
