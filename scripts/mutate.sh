#!/usr/bin/env bash
# Mutation testing with gremlins (github.com/go-gremlins/gremlins): it plants
# small bugs (a negated condition, < for <=, + for -) one at a time in the
# covered code of each package and runs the package's tests against each
# one. A mutant the tests do not notice ("LIVED") is behaviour no test
# guards. Not part of CI: it takes minutes per package.
#
#   scripts/mutate.sh [PKG...]          default: acl token auth
#
# Environment:
#   MUTATE_TIMEOUT   time bound per package, for timeout(1) (default 20m);
#                    a package cut short reports the score of the mutants run
#   MUTATE_WORKERS   mutants tested at once (default 1: the tests are busy too)
#   MUTATE_OUT       directory for the logs and JSON results (default build/mutate)
#
# The score printed per package is gremlins' efficacy, killed / (killed +
# lived), and its mutator coverage, (killed + lived) / (killed + lived + not
# covered). Timed-out mutants (a test hung or looped) are counted apart.
set -euo pipefail
cd "$(dirname "$0")/.."

GREMLINS_VERSION=v0.6.0
timeout_per_pkg=${MUTATE_TIMEOUT:-20m}
workers=${MUTATE_WORKERS:-1}
out=${MUTATE_OUT:-build/mutate}
pkgs=("$@")
[ ${#pkgs[@]} -eq 0 ] && pkgs=(acl token auth)

gremlins="$(go env GOPATH)/bin/gremlins"
# go install builds report "dev" as their version; the module version is in the binary.
if ! go version -m "$gremlins" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+github.com/go-gremlins/gremlins[[:space:]]+$GREMLINS_VERSION[[:space:]]"; then
	echo "installing gremlins $GREMLINS_VERSION"
	go install "github.com/go-gremlins/gremlins/cmd/gremlins@$GREMLINS_VERSION"
fi

mkdir -p "$out"
status=0
for pkg in "${pkgs[@]}"; do
	pkg=${pkg#./}
	pkg=${pkg%/}
	log="$out/$pkg.log"
	echo "== $pkg (bound $timeout_per_pkg, log $log)"
	rc=0
	timeout --foreground "$timeout_per_pkg" "$gremlins" unleash --workers "$workers" --test-cpu 1 \
		--timeout-coefficient 10 -o "$out/$pkg.json" "./$pkg" >"$log" 2>&1 || rc=$?
	cut=""
	[ "$rc" -eq 124 ] && cut=" (cut short by the time bound: partial)"
	[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && { tail -5 "$log"; status=1; }
	awk -v pkg="$pkg" -v cut="$cut" '
		/^ *KILLED /      { k++ }
		/^ *LIVED /       { l++; lived = lived "\n    " $0 }
		/^ *TIMED OUT /   { t++ }
		/^ *NOT COVERED / { n++ }
		/^ *NOT VIABLE /  { v++ }
		END {
			tested = k + l
			printf "%s: killed %d, lived %d, timed out %d, not covered %d, not viable %d", pkg, k, l, t, n, v
			if (tested > 0) printf "; efficacy %.1f%%, mutator coverage %.1f%%", 100 * k / tested, 100 * tested / (tested + n)
			print cut
			if (l > 0) print "  lived:" lived
		}' "$log"
done
exit $status
