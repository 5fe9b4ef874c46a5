#!/usr/bin/env bash
# Runs every package's tests (make test) on local clusters of their own:
# the fault suite, which stops drillerd and parts of its cluster, and the
# broken-backup corpus, the drills' package's longest test, each run beside
# the rest on a cluster of its own. Their output follows the rest's. Every
# suite is stopped and every cluster taken down whatever happens (a failure,
# Ctrl-C, SIGTERM); the script fails if any suite does.
#
# usage: test/suites.sh LOCALCLUSTER STATE_DIR_PREFIX [go test flags...]
# e.g. test/suites.sh bin/localcluster "$PWD/.localcluster" -count=1 -timeout 60m
set -uo pipefail
set -m # each suite in a process group of its own, stopped whole: go test, its test binary, their drillerds

localcluster=$(realpath -- "$1") || exit 1
prefix=$(realpath -m -- "$2") || exit 1
shift 2
go=${GO:-go}
cd "$(dirname "$0")/.." || exit 1

faults=./test/e2e/faults
corpus_pkg=./test/e2e/drill
corpus_test=TestBrokenBackupCorpus
if ! grep -q "^func $corpus_test(t \*testing.T)" "$corpus_pkg"/*_test.go; then
	echo "test/suites.sh: no $corpus_test in $corpus_pkg: update corpus_test here" >&2
	exit 1
fi
pkgs=$("$go" list ./...) || exit 1
pkgs=$(grep -v "/test/e2e/faults\$" <<<"$pkgs" | tr '\n' ' ')

# A suite: a name (its cluster is $prefix-name) and its go test arguments.
names=(test faults corpus)
declare -A args=(
	[test]="-skip ^$corpus_test\$ $pkgs"
	[faults]="$faults"
	[corpus]="-run ^$corpus_test\$ $corpus_pkg"
)
declare -A pids=()
logs=""

cleanup() {
	local pid
	for pid in "${pids[@]}"; do
		kill -TERM -- "-$pid" 2>/dev/null
	done
	wait
	for name in "${names[@]}"; do
		"$localcluster" down --state-dir "$prefix-$name" >/dev/null || echo "test/suites.sh: could not stop the cluster in $prefix-$name" >&2
	done
	[ -n "$logs" ] && rm -rf "$logs"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for name in "${names[@]}"; do
	"$localcluster" up --state-dir "$prefix-$name" >/dev/null || exit 1
done

logs=$(mktemp -d) || exit 1
for name in faults corpus; do
	# shellcheck disable=SC2086 # args are words
	DRILLERD_LOCALCLUSTER=$prefix-$name "$go" test "$@" ${args[$name]} >"$logs/$name" 2>&1 &
	pids[$name]=$!
done
# shellcheck disable=SC2086
DRILLERD_LOCALCLUSTER=$prefix-test "$go" test "$@" ${args[test]} &
pids[test]=$!

failed=()
for name in test faults corpus; do
	wait "${pids[$name]}" || failed+=("$name")
	unset "pids[$name]"
	if [ "$name" != test ]; then
		echo "=== $name suite (${args[$name]}), on $prefix-$name"
		cat "$logs/$name"
	fi
done
if ((${#failed[@]})); then
	echo "FAIL: ${failed[*]}"
	exit 1
fi
