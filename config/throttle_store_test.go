package config

import "testing"

func TestThrottleStore(t *testing.T) {
	testSections(t, []sectionCase{
		{"standalone", "throttle:\n  store: {type: redis, addrs: [\"redis:6379\"], db: 2, timeout: 20ms}\n", 0, "", ""},
		{"cluster", "throttle:\n  store: {type: redis, addrs: [\"a:6379\", \"b:6379\"]}\n", 0, "", ""},
		{"sentinel with a db", "throttle:\n  store: {type: redis, addrs: [\"s1:26379\", \"s2:26379\"], master_name: gh, db: 1}\n", 0, "", ""},
		{"another type", "throttle:\n  store: {type: memcached, addrs: [\"m:11211\"]}\n", 18, "throttle.store.type", `must be "redis"`},
		{"no address", "throttle:\n  store: {type: redis}\n", 18, "throttle.store.addrs", "at least one"},
		{"an empty address", "throttle:\n  store: {type: redis, addrs: [\"\"]}\n", 18, "throttle.store.addrs[0]", "empty"},
		{"a db in a cluster", "throttle:\n  store: {type: redis, addrs: [\"a:1\", \"b:1\"], db: 1}\n", 18, "throttle.store.db", "only db 0"},
		{"a CA without tls", "throttle:\n  store: {type: redis, addrs: [\"a:1\"], ca_certificate: ca.pem}\n", 18, "throttle.store.ca_certificate", "tls: true"},
		{"zero timeout", "throttle:\n  store: {type: redis, addrs: [\"a:1\"], timeout: 0s}\n", 18, "throttle.store.timeout", "positive"},
		{"an unknown key", "throttle:\n  store: {type: redis, addrs: [\"a:1\"], sentinel: x}\n", 18, "throttle.store.sentinel", ""},
	}, nil)
}
