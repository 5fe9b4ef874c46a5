#!/usr/bin/env bash
# The restore drillerd does, and one check, as a plain script would do it
# with kubectl and psql: a namespace, a Retain copy of the snapshot's
# content, a VolumeSnapshot bound to it, a claim restored from it and a
# PostgreSQL pod with a readiness probe; wait until it is Ready, count the
# orders, delete the namespace (kubectl waits until it is gone) and the
# content copy. make bench times it against drillerd (docs/benchmarks.md).
#
#   bench/peer.sh NAMESPACE SNAPSHOT_HANDLE DRIVER RESTORE_SIZE STORAGE_CLASS IMAGE
#
# KUBECONFIG names the cluster; PGPASSWORD is the database's password.
set -euo pipefail
ns=$1 handle=$2 driver=$3 size=$4 class=$5 image=$6

kubectl create namespace "$ns" >/dev/null
kubectl apply -f - >/dev/null <<YAML
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotContent
metadata:
  name: $ns
spec:
  deletionPolicy: Retain
  driver: $driver
  source:
    snapshotHandle: $handle
  volumeSnapshotRef:
    namespace: $ns
    name: restored
---
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshot
metadata:
  namespace: $ns
  name: restored
spec:
  source:
    volumeSnapshotContentName: $ns
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  namespace: $ns
  name: data
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: $class
  resources:
    requests:
      storage: $size
  dataSource:
    apiGroup: snapshot.storage.k8s.io
    kind: VolumeSnapshot
    name: restored
---
apiVersion: v1
kind: Pod
metadata:
  namespace: $ns
  name: db
spec:
  containers:
    - name: postgres
      image: $image
      env:
        - name: PGDATA
          value: /var/lib/postgresql/data/pgdata
      volumeMounts:
        - name: data
          mountPath: /var/lib/postgresql/data
      readinessProbe:
        exec:
          command: [pg_isready]
        periodSeconds: 2
  volumes:
    - name: data
      persistentVolumeClaim:
        claimName: data
YAML
kubectl -n "$ns" wait --for=condition=Ready pod/db --timeout=10m >/dev/null
ip=$(kubectl -n "$ns" get pod db -o jsonpath='{.status.podIP}')
psql -h "$ip" -U app -d app -tAc 'SELECT count(*) FROM orders' >/dev/null
kubectl delete namespace "$ns" >/dev/null
kubectl delete volumesnapshotcontent "$ns" >/dev/null
