#!/usr/bin/env bash
# Builds the local cluster's control-plane binaries (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl, snapshot-controller) from the Go module
# proxy into a cache outside the repository, and prints that directory.
# `build.sh helm` builds Helm (test/tools/helm) into a directory of its own and prints it.
# Each directory is keyed by the modules built into it (and this script), so pinning
# another tool does not rebuild the control plane. A warm cache makes this a no-op.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
modver() { awk -v m="$2" '($1==m || ($1=="require" && $2==m)) {print ($1=="require") ? $3 : $2; exit}' "$1"; }

key() { (for m in "$@"; do cat "$here/$m/go.mod" "$here/$m/go.sum"; done; cat "$here/build.sh") | sha256sum | cut -c1-12; }
cache=${DRILLERD_BIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/drillerd/bin}
export CGO_ENABLED=0 GOFLAGS=-mod=mod

log() { echo "build-tools: $*" >&2; }

if [ "${1:-}" = helm ]; then
  helm_version=$(modver "$here/helm/go.mod" helm.sh/helm/v3)
  out="$cache/helm-$helm_version-$(key helm)"
  if [ -x "$out/helm" ]; then echo "$out"; exit 0; fi
  log "building helm $helm_version (a few minutes when cold)"
  # As Helm's own Makefile does: its version, and the Kubernetes version
  # `helm template` and `helm lint` assume, from the client-go it is built with.
  client_go=$(cd "$here/helm" && go list -m -f '{{.Version}}' k8s.io/client-go)
  minor=$(echo "$client_go" | cut -d. -f2)
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$minor"
  done
  mkdir -p "$out.partial"
  (cd "$here/helm" && go build -trimpath -ldflags "$ldflags" -o "$out.partial/helm" helm.sh/helm/v3/cmd/helm)
  rm -rf "$out"
  mv "$out.partial" "$out"
  echo "$out"
  exit 0
fi

k8s_version=$(modver "$here/kubernetes/go.mod" k8s.io/kubernetes)
snap_version=$(modver "$here/snapshot-controller/go.mod" github.com/kubernetes-csi/external-snapshotter/v8)
out="$cache/$k8s_version-$(key etcd kubernetes snapshot-controller)"

want=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl snapshot-controller)
complete=true
for b in "${want[@]}"; do [ -x "$out/$b" ] || complete=false; done
if $complete; then echo "$out"; exit 0; fi

tmp="$out.partial"
mkdir -p "$tmp"

if [ ! -x "$tmp/etcd" ]; then
  log "building etcd"
  (cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" .)
fi

k8s_cmds=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
k8s_missing=false
for b in "${k8s_cmds[@]}"; do [ -x "$tmp/$b" ] || k8s_missing=true; done
if $k8s_missing; then
  log "building ${k8s_cmds[*]} $k8s_version (about 15 minutes on 2 cores when cold)"
  minor=$(echo "$k8s_version" | cut -d. -f2)
  date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
  done
  (cd "$here/kubernetes" && go build -trimpath -ldflags "$ldflags" -o "$tmp/" "${k8s_cmds[@]/#/k8s.io/kubernetes/cmd/}")
fi

if [ ! -x "$tmp/snapshot-controller" ]; then
  log "building snapshot-controller $snap_version"
  (cd "$here/snapshot-controller" && go build -trimpath -ldflags "-s -w -X main.version=$snap_version" \
    -o "$tmp/snapshot-controller" github.com/kubernetes-csi/external-snapshotter/v8/cmd/snapshot-controller)
fi

rm -rf "$out"
mv "$tmp" "$out"
echo "$out"
