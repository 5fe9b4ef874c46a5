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
//	ConfigMap pg-hba                         Trust mode only: pg_hba.conf admitting drillerd without a password
//	Pod db                                   the database on "data"
//
// Source objects (the production VolumeSnapshot, its content and claim) are
// only ever read. A copy with deletionPolicy Delete would destroy the
// production backup when the sandbox goes away; Retain keeps the physical
// snapshot, and the copy object is deleted by drillerd afterwards.
//
// drillerd deletes only objects that carry its labels
// (app.kubernetes.io/managed-by=drillerd and drills.drillerd.dev/run=<uid>),
// and namespaces only when they also have the name prefix "drill-".
// IsOwnedSandbox and IsOwnedContent are the only gates to deletion.
package restore
