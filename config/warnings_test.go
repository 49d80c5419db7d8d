package config

import (
	"strings"
	"testing"
)

func TestMaxConnections(t *testing.T) {
	tests := []struct {
		name, server string
		want         int
	}{
		{"unset", "", DefaultMaxConnections},
		{"zero means the default", "\n  max_connections: 0", DefaultMaxConnections},
		{"set", "\n  max_connections: 250", 250},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, perr := parse(t, strings.Replace(base, `addr: ":5001"`, `addr: ":5001"`+tc.server, 1))
			if perr != nil {
				t.Fatal(perr)
			}
			if got := c.Server.Connections(); got != tc.want {
				t.Fatalf("Connections() = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	tests := []struct {
		name, server string
		want         []string // "line|key|message fragment"
	}{
		{"no real_ip_header", "", nil},
		{"real_ip_pos unset", "\n  real_ip_header: X-Forwarded-For",
			[]string{"3|server.real_ip_header|first entry of X-Forwarded-For, which the client writes"}},
		{"real_ip_pos 0", "\n  real_ip_header: X-Forwarded-For\n  real_ip_pos: 0",
			[]string{"4|server.real_ip_pos|use -1"}},
		{"real_ip_pos -1", "\n  real_ip_header: X-Forwarded-For\n  real_ip_pos: -1", nil},
		{"real_ip_pos 1", "\n  real_ip_header: X-Forwarded-For\n  real_ip_pos: 1", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, perr := parse(t, strings.Replace(base, `addr: ":5001"`, `addr: ":5001"`+tc.server, 1))
			if perr != nil {
				t.Fatal(perr)
			}
			got := c.Warnings()
			if len(got) != len(tc.want) {
				t.Fatalf("got %d warnings, want %d: %v", len(got), len(tc.want), got)
			}
			for i, w := range tc.want {
				parts := strings.SplitN(w, "|", 3)
				p := got[i]
				if !strings.HasPrefix(p.String(), "auth_config.yml:"+parts[0]+":") || p.Key != parts[1] || !strings.Contains(p.Msg, parts[2]) {
					t.Errorf("warning %q, want line %s, key %s, message with %q", p, parts[0], parts[1], parts[2])
				}
			}
		})
	}
}
