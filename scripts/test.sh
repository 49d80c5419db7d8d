#!/usr/bin/env bash
# Runs every test of Gatehouse. It first installs, from Debian packages, the
# real components the tests use when they are missing, so it works on a fresh
# machine. It runs with CI=true unless the caller sets CI: a test whose
# component is missing then fails instead of skipping (helm for the chart
# tests, slapd, the registries, …), since this script installs them all.
set -euo pipefail
cd "$(dirname "$0")/.."
export CI="${CI:-true}"

# apt_install PKG... installs the Debian packages that are not installed yet.
# The package lists are updated once per run, before the first install.
APT_UPDATED=""
apt_install() {
	local missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "installing: ${missing[*]}"
	local sudo=""
	[ "$(id -u)" -ne 0 ] && sudo="sudo"
	if [ -z "$APT_UPDATED" ]; then
		$sudo apt-get update -qq
		APT_UPDATED=1
	fi
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

command -v go >/dev/null || { echo "go is required (1.26 or later)" >&2; exit 1; }

# OpenLDAP for the ldap_auth tests (internal/ldaptest starts its own slapd;
# with DEBIAN_FRONTEND=noninteractive the packaged service is not started).
apt_install slapd ldap-utils

# PostgreSQL and MariaDB for the xorm_auth and acl_xorm tests
# (internal/sqltest starts its own servers in temporary directories, on free
# ports; a packaged service that starts does not disturb them).
apt_install postgresql mariadb-server

# Redis for the shared throttle store (internal/redistest starts its own
# redis-server on a free port; bookworm packages no Valkey, which speaks the
# same protocol).
apt_install redis-server

# skopeo (containers/image) for the interop matrix in e2e/registryv2 and
# e2e/registryv3; the docker CLI it also runs comes with the machine.
apt_install skopeo

# podman (containers/image and containers/storage with the vfs driver) for the
# interop matrix; the tests give it a store and configuration of their own.
apt_install podman

# Chromium for the browser sign-in test (e2e/signin drives it headless with
# chromedp).
apt_install chromium

# SoftHSM2 for the PKCS #11 signing-key tests (built with -tags pkcs11:
# internal/hsmtest gives each test a token directory of its own and loads
# /usr/lib/softhsm/libsofthsm2.so; no service runs).
apt_install softhsm2

# helm and oras for the interop matrix, at pinned versions: built with
# `go install` into Go's bin directory, which the tests find first on PATH,
# when missing or at another version. The first build takes minutes (helm
# most); later runs only check the version.
GO_BIN_DIR=$(go env GOBIN)
[ -n "$GO_BIN_DIR" ] || GO_BIN_DIR=$(go env GOPATH)/bin
export PATH="$GO_BIN_DIR:$PATH"

# go_install_pinned NAME MODULE PACKAGE VERSION builds PACKAGE@VERSION as
# GO_BIN_DIR/NAME unless the binary there was built from MODULE at VERSION.
go_install_pinned() {
	local name=$1 module=$2 pkg=$3 version=$4 have="" start=$SECONDS
	if [ -x "$GO_BIN_DIR/$name" ]; then
		have=$(go version -m "$GO_BIN_DIR/$name" 2>/dev/null | awk -v m="$module" '$1 == "mod" && $2 == m { print $3 }')
	fi
	[ "$have" = "$version" ] && return 0
	echo "building $name $version (found: ${have:-none}): go install $pkg@$version"
	GOBIN=$GO_BIN_DIR go install "$pkg@$version"
	echo "built $name $version in $((SECONDS - start)) s"
}
go_install_pinned helm helm.sh/helm/v4 helm.sh/helm/v4/cmd/helm v4.3.2
go_install_pinned oras oras.land/oras oras.land/oras/cmd/oras v1.3.6

# nginx in front of three gatehouse processes (e2e/registryv3 replicas test,
# examples/nginx). The tests start their own nginx on a free port; they never
# use the packaged service.
apt_install nginx-light

# The Docker engine, for the engine's `docker login` in the interop matrix
# (e2e/harness) and the compose end-to-end test (e2e/docker, docs/docker.md).
# An engine that already answers is used as it is and left running. Otherwise
# this script installs Debian's engine when missing, starts dockerd in the
# background and stops it at exit. ENGINE says what happened: "running",
# "started" or "unavailable"; ENGINE_WHY says why it is unavailable.
ENGINE="" ENGINE_WHY="" DOCKERD_PID="" DOCKERD_LOG="" DOCKERD_TIMEOUT=${DOCKERD_TIMEOUT:-60}

# engine_fail REASON: the engine could not start; show the daemon's last log
# lines and stop the daemon if it still runs.
engine_fail() {
	ENGINE=unavailable ENGINE_WHY=$1
	echo "the Docker engine did not start: $ENGINE_WHY" >&2
	if [ -n "$DOCKERD_LOG" ] && [ -s "$DOCKERD_LOG" ]; then
		echo "---- last lines of the dockerd log ($DOCKERD_LOG)" >&2
		tail -n 30 "$DOCKERD_LOG" >&2
		echo "----" >&2
	fi
	stop_engine
}

# stop_engine stops the dockerd this script started (containerd, which it
# started, goes with it) and waits until it has exited.
stop_engine() {
	[ -n "$DOCKERD_PID" ] || return 0
	if kill -0 "$DOCKERD_PID" 2>/dev/null; then
		kill -TERM "$DOCKERD_PID" 2>/dev/null || true
		for _ in $(seq 1 60); do
			kill -0 "$DOCKERD_PID" 2>/dev/null || break
			sleep 0.5
		done
		if kill -0 "$DOCKERD_PID" 2>/dev/null; then
			echo "dockerd did not stop within 30 s; killing it" >&2
			kill -KILL "$DOCKERD_PID" 2>/dev/null || true
		fi
	fi
	wait "$DOCKERD_PID" 2>/dev/null || true
	DOCKERD_PID=""
}

start_engine() {
	if docker info >/dev/null 2>&1; then
		ENGINE=running
		echo "Docker engine: already running (used as it is, left running)"
		return 0
	fi
	apt_install docker.io docker-compose fuse-overlayfs
	local sudo=""
	[ "$(id -u)" -ne 0 ] && sudo="sudo"
	if [ ! -e /etc/docker/daemon.json ]; then
		# The settings the Docker machines used so far ran with: fuse-overlayfs
		# works where the kernel's overlayfs cannot be mounted (nested in a
		# VM or container), a small MTU fits tunnelled networks, and capped
		# json-file logs.
		$sudo mkdir -p /etc/docker
		$sudo tee /etc/docker/daemon.json >/dev/null <<-'JSON'
			{
			  "storage-driver": "fuse-overlayfs",
			  "mtu": 1400,
			  "log-driver": "json-file",
			  "log-opts": {"max-size": "10m", "max-file": "3"}
			}
		JSON
		echo "wrote /etc/docker/daemon.json"
	fi
	DOCKERD_LOG=$(mktemp "${TMPDIR:-/tmp}/gatehouse-dockerd.XXXXXX.log")
	echo "starting dockerd (log: $DOCKERD_LOG)"
	$sudo dockerd >"$DOCKERD_LOG" 2>&1 &
	DOCKERD_PID=$!
	local waited=0
	until docker info >/dev/null 2>&1; do
		if ! kill -0 "$DOCKERD_PID" 2>/dev/null; then
			local rc=0
			wait "$DOCKERD_PID" 2>/dev/null || rc=$?
			DOCKERD_PID=""
			engine_fail "dockerd exited with status $rc before it answered 'docker info'"
			return 0
		fi
		if [ "$waited" -ge "$DOCKERD_TIMEOUT" ]; then
			engine_fail "dockerd did not answer 'docker info' within ${DOCKERD_TIMEOUT} s"
			return 0
		fi
		sleep 1
		waited=$((waited + 1))
	done
	ENGINE=started
	echo "Docker engine: started $(docker version --format '{{.Server.Version}}' 2>/dev/null) after ${waited} s"
}

COMPONENTS=$(mktemp "${TMPDIR:-/tmp}/gatehouse-components.XXXXXX")
DOCKER_E2E="did not run"

# summary prints which real components the suite used and whether their
# tests ran; it runs at every exit, after the tests or after a failure.
summary() {
	echo
	echo "== real components used by this run"
	if [ -s "$COMPONENTS" ]; then
		cat "$COMPONENTS"
	else
		echo "  (go test did not finish: no table of the components its tests used)"
	fi
	case $ENGINE in
	running) echo "  compose e2e      $DOCKER_E2E (make e2e-docker; the Docker engine was already running)" ;;
	started) echo "  compose e2e      $DOCKER_E2E (make e2e-docker; the Docker engine was started by this script)" ;;
	unavailable) echo "  compose e2e      NOT RUN: no Docker engine ($ENGINE_WHY)" ;;
	*) echo "  compose e2e      $DOCKER_E2E (the run stopped before the engine was checked)" ;;
	esac
}

on_exit() {
	local rc=$?
	set +e
	summary
	stop_engine
	[ -n "$DOCKERD_LOG" ] && [ "$ENGINE" != unavailable ] && rm -f "$DOCKERD_LOG"
	rm -f "$COMPONENTS"
	exit $rc
}
trap on_exit EXIT
trap 'exit 130' INT TERM

start_engine
if [ "$ENGINE" = unavailable ]; then
	# The harness's engine `docker login` skips with this reason instead of
	# failing under CI=true (e2e/harness/clients.go requireEngine).
	export GATEHOUSE_DOCKER_ENGINE_UNAVAILABLE="$ENGINE_WHY"
fi

echo "== go vet"
go vet ./...
# The PKCS #11 signer and its tests are built only with the pkcs11 tag (cgo).
go vet -tags pkcs11 ./token/ ./internal/hsmtest/ ./e2e/harness/ ./e2e/registryv2/ ./e2e/registryv3/

echo "== go test"
# -json carries every test's log, so scripts/testreport can count the tests
# that used each real component (testutil.UsesComponent); it prints what a
# plain go test prints, plus the skipped tests.
# The unit tests (every package outside e2e/) run with the race detector;
# the end-to-end packages, which spend their time in real clients and
# registries, run without it to keep the suite within its time budget.
unit_pkgs=$(go list ./... | grep -v '/e2e/')
e2e_pkgs=$(go list ./e2e/...)
(
	rc=0
	# shellcheck disable=SC2086 # the lists are package paths, one word each
	# The timing tests cannot run under the race detector (it distorts
	# bcrypt and scheduling times): they are left out of the race run and
	# run on their own without it, so they run rather than skip.
	timing='^(TestTimingHidesAccounts|TestUnknownAccountCostsLikeAWrongPassword)$'
	go test -json -race -count=1 -timeout 15m -skip "$timing" $unit_pkgs || rc=1
	go test -json -count=1 -run "$timing" ./auth || rc=1
	# shellcheck disable=SC2086
	go test -json -count=1 -timeout 15m $e2e_pkgs || rc=1
	# The PKCS #11 signer (cgo, SoftHSM2): its unit tests with the race
	# detector (the other token tests ran above), then its registry v2 and v3 push
	# and pull without it.
	go test -json -race -count=1 -tags pkcs11 -run 'PKCS11' ./token/ ./internal/hsmtest/... || rc=1
	go test -json -count=1 -timeout 10m -tags pkcs11 -run '^TestPKCS11' ./e2e/registryv2/ ./e2e/registryv3/ || rc=1
	exit $rc
) 2>&1 | go run ./scripts/testreport -components "$COMPONENTS"

# Fuzzing: each parser target for a bounded time. A crash fails the run and
# leaves the failing input in the package's testdata/fuzz, where the second
# attempt replays it first; a hiccup of the fuzzing engine itself (no input
# saved) does not repeat.
echo "== fuzz (10 s each)"
fuzzlog=$(mktemp)
for target in auth:FuzzParseScopes auth:FuzzParseRequest auth:FuzzParsePost config:FuzzParse acl:FuzzDecide acl:FuzzGlobRegex token:FuzzParseAWSKMSRef token:FuzzParsePKCS11URI token:FuzzAppendRawECDSA; do
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

# The seed blog's compose stack on the real Docker engine (e2e/docker/run.sh,
# docs/docker.md). It runs whenever an engine answers. When this script could
# not start one, it says so (above and in the summary) and goes on: every
# other component stays required under CI=true.
echo "== docker end-to-end (make e2e-docker)"
case $ENGINE in
running | started)
	DOCKER_E2E=FAILED
	E2E_REFRESH=require make e2e-docker
	DOCKER_E2E=passed
	;;
*)
	DOCKER_E2E="did not run: $ENGINE_WHY"
	echo "NOT RUN: the docker end-to-end test needs a Docker engine, and none could be started: $ENGINE_WHY"
	;;
esac
