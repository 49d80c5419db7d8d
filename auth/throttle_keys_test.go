package auth

import (
	"net/netip"
	"strings"
	"testing"
)

// throttleSteps runs requests against s in order and checks each status.
func throttleSteps(t *testing.T, s *Server, steps []throttleStep) {
	t.Helper()
	for _, st := range steps {
		if r := getFrom(s, st.ip, st.user, st.pass); r.status != st.want {
			t.Fatalf("%s: status %d, want %d", st.name, r.status, st.want)
		}
	}
}

type throttleStep struct {
	name, ip, user, pass string
	want                 int
}

func TestThrottleIPv6Prefix(t *testing.T) {
	fail := func(name, ip string) throttleStep { return throttleStep{name, ip, "alice", "x", 401} }
	tests := []struct {
		name    string
		section string
		steps   []throttleStep
	}{
		{"default: one /64 is one client", "", []throttleStep{
			fail("1st failure", "[2001:db8:0:1::1]"),
			fail("2nd, from another address of the /64", "[2001:db8:0:1::2]"),
			fail("3rd, from yet another", "[2001:db8:0:1:ffff:ffff:ffff:ffff]"),
			{"the /64 is blocked, whatever its address", "[2001:db8:0:1:1234::abcd]", "alice", "alicepw", 429},
			{"the next /64 is another client", "[2001:db8:0:2::1]", "alice", "alicepw", 200},
		}},
		{"ipv6_prefix: 48", "ipv6_prefix: 48, ", []throttleStep{
			fail("1st failure", "[2001:db8:0:1::1]"),
			fail("2nd, from another /64", "[2001:db8:0:2::1]"),
			fail("3rd, from a third", "[2001:db8:0:ffff::1]"),
			{"the /48 is blocked", "[2001:db8:0:3::1]", "alice", "alicepw", 429},
			{"the next /48 is another client", "[2001:db8:1::1]", "alice", "alicepw", 200},
		}},
		{"ipv6_prefix: 128", "ipv6_prefix: 128, ", []throttleStep{
			fail("1st failure", "[2001:db8::1]"),
			fail("2nd", "[2001:db8::1]"),
			fail("3rd", "[2001:db8::1]"),
			{"the address is blocked", "[2001:db8::1]", "alice", "alicepw", 429},
			{"its neighbour is another client", "[2001:db8::2]", "alice", "alicepw", 200},
		}},
		{"IPv4 per address and IPv4-mapped as IPv4", "", []throttleStep{
			fail("1st failure, IPv4-mapped", "[::ffff:198.51.100.30]"),
			fail("2nd, IPv4", "198.51.100.30"),
			fail("3rd, IPv4-mapped", "[::ffff:198.51.100.30]"),
			{"the address is blocked", "198.51.100.30", "alice", "alicepw", 429},
			{"its neighbour is another client", "198.51.100.31", "alice", "alicepw", 200},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newOAuthEnv(t)
			env.top = "throttle: {" + tt.section + "account_ip_failures: 3, ip_failures: 1000}\n"
			throttleSteps(t, env.server("", ""), tt.steps)
		})
	}
}

func TestThrottleClientKey(t *testing.T) {
	tests := []struct {
		name, ip string
		bits     int
		want     string
	}{
		{"IPv4 as it is", "198.51.100.7", 64, "198.51.100.7"},
		{"IPv4-mapped is IPv4", "::ffff:198.51.100.7", 64, "198.51.100.7"},
		{"IPv6 cut to /64", "2001:db8:1:2:3:4:5:6", 64, "2001:db8:1:2::"},
		{"IPv6 zone dropped", "fe80::1:2%eth0", 64, "fe80::"},
		{"IPv6 cut to /56", "2001:db8:1:2ff::1", 56, "2001:db8:1:200::"},
		{"IPv6 exact", "2001:db8::1", 128, "2001:db8::1"},
		{"IPv6 cut to /1", "ffff::1", 1, "8000::"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := clientKey(netip.MustParseAddr(tt.ip), tt.bits); got != netip.MustParseAddr(tt.want) {
				t.Fatalf("clientKey(%s, %d) = %s, want %s", tt.ip, tt.bits, got, tt.want)
			}
		})
	}
	if got := clientKey(netip.Addr{}, 64); got.IsValid() {
		t.Fatalf("no address became %s", got)
	}
}

// Every spelling of an account shares one failure budget.
func TestThrottleAccountSpellings(t *testing.T) {
	env := newOAuthEnv(t)
	env.top = "throttle: {account_ip_failures: 3, ip_failures: 1000}\n"
	const ip = "198.51.100.40"
	throttleSteps(t, env.server("", ""), []throttleStep{
		{"BOB", ip, "BOB", "x", 401},
		{"Bob", ip, "Bob", "x", 401},
		{"bob", ip, "bob", "x", 401},
		{"bOB is blocked", ip, "bOB", "x", 429},
		{"so is bob", ip, "bob", "x", 429},
		{"another account is not", ip, "alice", "alicepw", 200},
	})
	for _, tt := range []struct{ a, b string }{
		{"bob", "BOB"}, {"straße", "STRAßE"}, {"kelvin", "\u212aELVIN"}, {"ſam", "SAM"}, {"Σίσυφος", "σίσυφοσ"},
	} {
		if foldAccount(tt.a) != foldAccount(tt.b) {
			t.Errorf("%q and %q have different keys: %q, %q", tt.a, tt.b, foldAccount(tt.a), foldAccount(tt.b))
		}
	}
	if foldAccount("bob") == foldAccount("bob2") || foldAccount("é") == foldAccount("e") {
		t.Error("different accounts share a key")
	}
}

// A name with white space at an end or a control or format character is
// refused like a wrong password, before any lookup, and counted.
func TestThrottleRefusesMalformedNames(t *testing.T) {
	env := newOAuthEnv(t)
	env.top = "throttle: {account_ip_failures: 2, ip_failures: 4}\n"
	s := env.server("", "")
	b := countChecks(t, s, false)
	for i, name := range []string{" alice", "alice ", "\talice", "alice\n", "al\x00ice", "alice\u00a0", "ali\u0085ce", "\u200balice", "alice\u3000"} {
		r := getFrom(s, ipN(i).String(), name, "alicepw")
		if r.status != 401 || !strings.Contains(r.raw, `"code":"UNAUTHORIZED"`) || !strings.Contains(r.raw, msgBadCredentials) {
			t.Errorf("%q: %d %s, want 401 with %q", name, r.status, r.raw, msgBadCredentials)
		}
		if strings.Contains(r.raw, "alice") || strings.Contains(r.raw, "ali") {
			t.Errorf("%q: the answer echoes the name: %s", name, r.raw)
		}
	}
	form := form("grant_type", "password", "service", "registry", "client_id", "test", "username", "alice ", "password", "alicepw")
	if r := post(s, form); r.status != 401 || !strings.Contains(r.raw, msgBadCredentials) {
		t.Errorf("OAuth2 username with a trailing space: %d %s", r.status, r.raw)
	}
	if n := b.checks.Load(); n != 0 {
		t.Fatalf("%d malformed names reached the authenticator", n)
	}
	const ip = "198.51.100.41"
	throttleSteps(t, s, []throttleStep{
		{"counted for the folded name", ip, " alice", "alicepw", 401},
		{"so another spelling of it", ip, " ALICE", "alicepw", 401},
		{"has spent the pair's budget", ip, " Alice", "alicepw", 429},
		{"and for the client", ip, "bob\x00", "x", 401},
		{"a fourth failure", ip, "carol\t", "x", 401},
		{"spends the client's budget", ip, "alice", "alicepw", 429},
	})
}
