// Package restore holds the Kubernetes mechanics of a drill: choosing the
// snapshot, building the sandbox, recognising progress and failure of its
// objects, and tearing it down.
//
// # Design: the sandbox and its ownership rules
//
// A drill restores into a sandbox of its own:
//
//	Namespace drill-<drill>-<uid8>           labels below; deny-all NetworkPolicy admitting only drillerd
//	VolumeSnapshotContent drill-<run uid>    cluster-scoped copy of the source content: same snapshotHandle,
//	                                         deletionPolicy Retain, bound to the VolumeSnapshot "source"
//	VolumeSnapshot source                    in the sandbox namespace
//	PersistentVolumeClaim data               restored from "source"
//	ConfigMap pg-hba                         pg_hba.conf and pg_ident.conf: the network only over TLS, with the
//	                                         run's client certificate (mode Trust) or a password (mode Secret)
//	Secret sandbox-tls                       the database's TLS key and certificate and the run's authority
//	                                         (access.go; drillerd's client key is in its memory only)
//	Pod db                                   the database on "data"
//
// Source objects (the production VolumeSnapshot, its content and claim) are
// only ever read. A copy with deletionPolicy Delete would destroy the
// production backup when the sandbox goes away; Retain keeps the physical
// snapshot, and the copy object is deleted by drillerd afterwards.
//
// drillerd deletes only objects that carry its labels
// (app.kubernetes.io/managed-by=drillerd and drills.drillerd.dev/run=<uid>),
// and namespaces only when they also have the name prefix "drill-". The
// restored volume is changed (its reclaim policy set to Delete, so that it
// goes with its claim) only while it is bound, or was bound before it was
// Released, to the claim "data" of a sandbox namespace.
//
// Those rules live in ownership.go, and its functions are the only gates
// to deleting or changing a cluster object: IsOwnedSandbox for namespaces,
// IsOwnedContent for content copies, IsSandboxVolume and IsOwnedVolume for
// restored volumes.
package restore
