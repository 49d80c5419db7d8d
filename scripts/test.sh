#!/usr/bin/env bash
# Runs every test of Gatehouse. It first installs, from Debian packages, the
# real components the tests use when they are missing, so it works on a fresh
# machine. With CI=true, a test whose component is missing fails instead of
# skipping.
set -euo pipefail
cd "$(dirname "$0")/.."

# apt_install PKG... installs the Debian packages that are not installed yet.
apt_install() {
	local missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "installing: ${missing[*]}"
	local sudo=""
	[ "$(id -u)" -ne 0 ] && sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

command -v go >/dev/null || { echo "go is required (1.26 or later)" >&2; exit 1; }

# OpenLDAP for the ldap_auth tests (internal/ldaptest starts its own slapd;
# with DEBIAN_FRONTEND=noninteractive the packaged service is not started).
apt_install slapd ldap-utils

# skopeo (containers/image) for the interop matrix in e2e/registryv2 and
# e2e/registryv3; the docker CLI it also runs comes with the machine.
apt_install skopeo

# nginx in front of three gatehouse processes (e2e/registryv3 replicas test,
# examples/nginx). The tests start their own nginx on a free port; they never
# use the packaged service.
apt_install nginx-light

echo "== go vet"
go vet ./...

echo "== go test"
go test -count=1 -timeout 15m ./...

# Fuzzing: each parser target for a bounded time. A crash fails the run and
# leaves the failing input in the package's testdata/fuzz, where the second
# attempt replays it first; a hiccup of the fuzzing engine itself (no input
# saved) does not repeat.
echo "== fuzz (10 s each)"
fuzzlog=$(mktemp)
for target in auth:FuzzParseScopes auth:FuzzParseRequest auth:FuzzParsePost config:FuzzParse acl:FuzzDecide; do
	pkg=${target%%:*} name=${target#*:}
	echo "-- $name ($pkg)"
	if ! go test -run='^$' -fuzz="^${name}\$" -fuzztime=10s "./$pkg" >"$fuzzlog" 2>&1; then
		grep -v '^fuzz: elapsed' "$fuzzlog" | tail -n 40
		echo "-- $name: again"
		if ! go test -run='^$' -fuzz="^${name}\$" -fuzztime=10s "./$pkg" >"$fuzzlog" 2>&1; then
			grep -v '^fuzz: elapsed' "$fuzzlog" | tail -n 40
			rm -f "$fuzzlog"
			exit 1
		fi
	fi
	tail -n 1 "$fuzzlog"
done
rm -f "$fuzzlog"

# The seed blog's compose stack on a real Docker engine (e2e/docker/run.sh,
# docs/docker.md): it runs whenever an engine answers, and CI must have one.
echo "== docker end-to-end (make e2e-docker)"
if docker info >/dev/null 2>&1; then
	E2E_REFRESH=require make e2e-docker
elif [ "${CI:-}" = "true" ]; then
	echo "CI=true but no Docker engine answers 'docker info': the docker end-to-end test must run in CI" >&2
	exit 1
else
	echo "skipped: no Docker engine answers 'docker info' (CI=true makes this an error)"
fi
