#!/usr/bin/env bash
# Runs every package's tests (make test) on local clusters of their own:
# the fault suite, which stops drillerd and parts of its cluster, and the
# broken-backup corpus, the drills' package's longest test, each run beside
# the rest on a cluster of its own. Their output follows the rest's. Every
# cluster is stopped whatever fails; the script fails if any suite does.
#
# usage: test/suites.sh LOCALCLUSTER STATE_DIR_PREFIX [go test flags...]
# e.g. test/suites.sh bin/localcluster "$PWD/.localcluster" -count=1 -timeout 60m
set -uo pipefail

localcluster=$1
prefix=$2
shift 2
go=${GO:-go}

faults=./test/e2e/faults
corpus_pkg=./test/e2e/drill
corpus_test='^TestBrokenBackupCorpus$'

# A suite: a name (its cluster is $prefix-name) and its go test arguments.
names=(test faults corpus)
declare -A args=(
	[test]="-skip $corpus_test $("$go" list ./... | grep -v "/test/e2e/faults\$" | tr '\n' ' ')"
	[faults]="$faults"
	[corpus]="-run $corpus_test $corpus_pkg"
)

down() {
	for name in "${names[@]}"; do
		"$localcluster" down --state-dir "$prefix-$name" >/dev/null 2>&1
	done
}
trap down EXIT

for name in "${names[@]}"; do
	"$localcluster" up --state-dir "$prefix-$name" >/dev/null || exit 1
done

logs=$(mktemp -d)
trap 'down; rm -rf "$logs"' EXIT
declare -A pids
for name in faults corpus; do
	# shellcheck disable=SC2086 # args are words
	DRILLERD_LOCALCLUSTER=$prefix-$name "$go" test "$@" ${args[$name]} >"$logs/$name" 2>&1 &
	pids[$name]=$!
done
failed=()
# shellcheck disable=SC2086
DRILLERD_LOCALCLUSTER=$prefix-test "$go" test "$@" ${args[test]} || failed+=(test)
for name in faults corpus; do
	wait "${pids[$name]}" || failed+=("$name")
	echo "=== $name suite (${args[$name]}), on $prefix-$name"
	cat "$logs/$name"
done
if ((${#failed[@]})); then
	echo "FAIL: ${failed[*]}"
	exit 1
fi
