// Package builder holds fluent builders of test fixtures: RestoreDrills,
// DrillRuns, and the VolumeSnapshots, VolumeSnapshotContents and
// PersistentVolumeClaims a drill restores from.
//
// Each builder starts from the smallest valid object (its name and, for a
// namespaced kind, its namespace), sets exactly what its methods are told,
// and returns the object with Obj:
//
//	drill := builder.ForDrill("prod", "orders-db").Schedule("0 3 * * *").Source("data-orders-0").Image("postgres:16").Obj()
//	run := builder.ForRun("prod", "orders-db-1").Of("orders-db").In(drillsv1.PhaseValidating).Obj()
//
// Methods change the builder's object in place and return the builder, so a
// chain reads as the object it makes. Obj returns that object itself, not a
// copy: take a new builder for every fixture.
package builder
