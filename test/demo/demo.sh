#!/usr/bin/env bash
# make demo: the local cluster, drillerd installed from deploy/, a shop's
# production PostgreSQL with live traffic and nightly VolumeSnapshots, and
# one drill with its report.
set -euo pipefail
cd "$(dirname "$0")/../.."
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# The end-to-end test runs the demo on its own cluster and binaries.
state=${DEMO_STATE_DIR:-.localcluster}
drillerd=${DRILLERD:-bin/drillerd}
localcluster=${LOCALCLUSTER:-bin/localcluster}
api=${DEMO_API_ADDRESS:-127.0.0.1:8443}
metrics=${DEMO_METRICS_ADDRESS:-127.0.0.1:8080}
probes=${DEMO_PROBE_ADDRESS:-127.0.0.1:8081}

say "Starting the local cluster"
"$localcluster" up --state-dir "$state" >/dev/null
eval "$("$localcluster" env --state-dir "$state")"
state=$(cd "$state" && pwd)

say "Installing drillerd from deploy/ (CRDs, RBAC, Service, NetworkPolicy)"
kubectl apply --server-side --force-conflicts -k test/demo/install >/dev/null
kubectl wait --for=condition=Established --timeout=60s crd/restoredrills.drills.drillerd.dev crd/drillruns.drills.drillerd.dev >/dev/null
kubectl get clusterrole drillerd

say "Deploying production: shop/orders-db (PostgreSQL 15 StatefulSet)"
kubectl apply -f test/demo/production.yaml >/dev/null
kubectl -n shop rollout status statefulset/orders-db --timeout=180s >/dev/null
ip=$(kubectl -n shop get pod orders-db-0 -o jsonpath='{.status.podIP}')
export PGPASSWORD=demo-only-password
if [ "$(psql -h "$ip" -U shop -d shop -tAc "SELECT to_regclass('orders') IS NOT NULL")" != t ]; then
  psql -q -h "$ip" -U shop -d shop -v ON_ERROR_STOP=1 -f test/demo/schema.sql
fi
if ! { [ -f "$state/writer.pid" ] && kill -0 "$(cat "$state/writer.pid")" 2>/dev/null; }; then
  nohup test/demo/writer.sh "$ip" >"$state/writer.log" 2>&1 &
  echo $! >"$state/writer.pid"
fi
sleep 2
psql -h "$ip" -U shop -d shop -tAc \
  "SELECT format('%s customers, %s orders, %s order items; a writer adds an order every 0.5s', (SELECT count(*) FROM customers), (SELECT count(*) FROM orders), (SELECT count(*) FROM order_items))"

say "Taking two nightly VolumeSnapshots of data-orders-db-0, a few seconds apart"
for _ in 1 2; do
  snap=$(kubectl create -f test/demo/snapshot.yaml -o jsonpath='{.metadata.name}')
  kubectl -n shop wait --for=jsonpath='{.status.readyToUse}'=true "volumesnapshot/$snap" --timeout=120s >/dev/null
  sleep 3
done
kubectl -n shop get volumesnapshots

# The drill's image must be production's major version: the example's, set
# to the demo's production image, as anyone adapting the example does.
image=$(kubectl -n shop get statefulset orders-db -o jsonpath='{.spec.template.spec.containers[0].image}')
say "Applying the RestoreDrill (deploy/examples/restoredrill.yaml, with production's image $image)"
sed -E "s|^(    image:) .*|\1 $image|" deploy/examples/restoredrill.yaml | kubectl apply -f -

if [ -f "$state/drillerd.pid" ]; then
  kill "$(cat "$state/drillerd.pid")" 2>/dev/null || true   # a fresh token, and the binary just built
  rm -f "$state/drillerd.pid"
  sleep 1
fi
{
  say "Starting drillerd serve as the drillerd ServiceAccount (log: $state/drillerd.log)"
  server=$(kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.server}')
  kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' | base64 -d >"$state/drillerd-ca.crt"
  token=$(kubectl -n drillerd-system create token drillerd --duration=24h)
  sa_kubeconfig="$state/drillerd.kubeconfig"
  rm -f "$sa_kubeconfig"
  KUBECONFIG=$sa_kubeconfig kubectl config set-cluster local --server="$server" --certificate-authority="$state/drillerd-ca.crt" --embed-certs >/dev/null
  KUBECONFIG=$sa_kubeconfig kubectl config set-credentials drillerd --token="$token" >/dev/null
  KUBECONFIG=$sa_kubeconfig kubectl config set-context drillerd --cluster=local --user=drillerd --namespace=drillerd-system >/dev/null
  KUBECONFIG=$sa_kubeconfig kubectl config use-context drillerd >/dev/null
  nohup "$drillerd" serve --kubeconfig "$sa_kubeconfig" --namespace drillerd-system --log-format console \
    --api-bind-address "$api" --metrics-bind-address "$metrics" --health-probe-bind-address "$probes" \
    >"$state/drillerd.log" 2>&1 &
  echo $! >"$state/drillerd.pid"
  ready=false
  for _ in $(seq 60); do
    if curl -sf "$probes/readyz" >/dev/null; then ready=true; break; fi
    sleep 0.5
  done
  if ! $ready; then
    echo "drillerd did not become ready; its log:" >&2
    tail -20 "$state/drillerd.log" >&2
    exit 1
  fi
}

say "Running a drill: bin/drillerd run -n shop orders-db"
code=0
"$drillerd" run -n shop orders-db || code=$?

say "kubectl -n shop get restoredrills,drillruns"
kubectl -n shop get restoredrills,drillruns

# An SRE of the shop: the built-in edit role includes drillerd-view and
# drillerd-edit (deploy/install/aggregated-roles.yaml), so the status page
# shows shop's drills and the HTTP API starts them.
kubectl -n shop create serviceaccount sre --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n shop create rolebinding sre-edit --clusterrole=edit --serviceaccount=shop:sre --dry-run=client -o yaml | kubectl apply -f - >/dev/null
# drillerd's API accepts only tokens minted for its audience (--api-audiences).
viewer=$(kubectl -n shop create token sre --duration=24h --audience drillerd)

cat <<MSG

Look around:
  Status page (self-signed certificate): https://$api/
    sign in with this token of shop's sre ServiceAccount (audience drillerd, valid 24h):
    $viewer
  Metrics:           curl -s $metrics/metrics | grep ^drillerd_
  The run in detail: eval "\$(bin/localcluster env)"; kubectl -n shop describe drillruns
  Another drill:     bin/drillerd run -n shop orders-db
  Over HTTP:         curl -sk -X POST -H "Authorization: Bearer \$(kubectl -n shop create token sre --audience drillerd)" \\
                       https://$api/api/v1/namespaces/shop/restoredrills/orders-db/runs
  drillerd's log:    tail -f $state/drillerd.log
Stop everything:     make cluster-down
MSG
exit $code
