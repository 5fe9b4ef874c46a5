#!/usr/bin/env bash
# make demo: a local cluster, a production PostgreSQL with data and a
# snapshot, drillerd serving, and one drill with its report.
set -euo pipefail
cd "$(dirname "$0")/../.."
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Starting the local cluster"
bin/localcluster up >/dev/null
eval "$(bin/localcluster env)"
state=.localcluster

say "Installing the CRDs"
kubectl apply --server-side --force-conflicts -k deploy/crds >/dev/null
kubectl wait --for=condition=Established --timeout=60s crd/restoredrills.drills.drillerd.dev crd/drillruns.drills.drillerd.dev >/dev/null

say "Deploying production: shop/orders-db (PostgreSQL 16 StatefulSet)"
kubectl apply -f test/demo/production.yaml >/dev/null
kubectl -n shop rollout status statefulset/orders-db --timeout=180s >/dev/null
ip=$(kubectl -n shop get pod orders-db-0 -o jsonpath='{.status.podIP}')
if [ "$(PGPASSWORD=demo-only-password psql -h "$ip" -U shop -d shop -tAc "SELECT to_regclass('orders') IS NOT NULL")" != t ]; then
  PGPASSWORD=demo-only-password psql -q -h "$ip" -U shop -d shop -v ON_ERROR_STOP=1 -f test/demo/schema.sql
fi
PGPASSWORD=demo-only-password psql -h "$ip" -U shop -d shop -tAc \
  "SELECT format('%s customers, %s orders, %s order items', (SELECT count(*) FROM customers), (SELECT count(*) FROM orders), (SELECT count(*) FROM order_items))"

say "Taking a VolumeSnapshot of data-orders-db-0"
snap=$(kubectl create -f test/demo/snapshot.yaml -o jsonpath='{.metadata.name}')
kubectl -n shop wait --for=jsonpath='{.status.readyToUse}'=true "volumesnapshot/$snap" --timeout=120s >/dev/null
kubectl -n shop get volumesnapshot "$snap"

say "Applying the RestoreDrill (deploy/examples/restoredrill.yaml)"
kubectl apply -f deploy/examples/restoredrill.yaml

if [ -f "$state/drillerd.pid" ] && kill -0 "$(cat "$state/drillerd.pid")" 2>/dev/null; then
  say "drillerd is already serving (pid $(cat "$state/drillerd.pid"))"
else
  say "Starting drillerd serve (log: $state/drillerd.log)"
  nohup bin/drillerd serve --kubeconfig "$KUBECONFIG" --namespace drillerd-system --log-format console \
    --metrics-bind-address 127.0.0.1:8080 --health-probe-bind-address 127.0.0.1:8081 >"$state/drillerd.log" 2>&1 &
  echo $! >"$state/drillerd.pid"
fi

say "Running a drill: bin/drillerd run -n shop orders-db"
code=0
bin/drillerd run -n shop orders-db || code=$?

say "kubectl -n shop get restoredrills,drillruns"
kubectl -n shop get restoredrills,drillruns

cat <<MSG

Look around:
  eval "\$(bin/localcluster env)"       # KUBECONFIG and kubectl on PATH
  kubectl -n shop describe drillrun      # status, phases, checks, events
  bin/drillerd run -n shop orders-db     # another drill
  curl -s 127.0.0.1:8080/metrics | grep controller_runtime_reconcile_total
  curl -s 127.0.0.1:8081/readyz
  tail -f $state/drillerd.log
Stop everything: make cluster-down
MSG
exit $code
