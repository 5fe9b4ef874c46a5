// Package drill is the DrillRun reconciler.
//
// # Design: one pipeline of re-entrant steps
//
// A run goes through the phases of pipeline (pipeline.go) in order:
//
//	Pending → SelectingSnapshot → Provisioning → RestoringVolume → StartingDatabase → Validating → TearingDown → Done
//
// Each phase has one step. A step looks at what already exists, does one
// thing and returns one of three outcomes:
//
//   - nextPhase: its work is done; the run moves on within the same
//     reconcile, so no time is lost between phases;
//   - waitFor(d): it waits. Waiting is a watch: sandbox objects carry the
//     run's labels and every change to them reconciles the run; d covers
//     "nothing happened" (a phase deadline, a recheck);
//   - conclude(verdict): the run has its verdict and goes to TearingDown.
//
// Steps never set result fields: endRun is the one way a run gets its
// verdict, whoever decides it (a step, a permanent API error, the total
// timeout, a drill deleted mid-run, or start-up recovery marking a run
// Interrupted). Status is written when a run waits, when it has its
// verdict (before teardown), and as it enters Validating, whose checks may
// run long: phases passed within one reconcile share one write and one
// event. A run whose cached copy is older than this process's last write
// of it waits for the cache (writeLog), so that no step is done twice.
// Deadlines derive from times in status, so they survive restarts.
//
// Waiting costs no API request: the manager's cache holds drillerd's
// labelled sandbox objects, and their watch events wake the run. Teardown
// reads the sandbox from the cache too (sightings.go); what the cache has
// not shown yet is read from the API server.
//
// One thing a run holds outside its status: its Access (access.go), the
// certificates Provisioning makes for it, whose client key is the only way
// into its sandbox's database over the network. It lives in this
// process's memory from Provisioning to the verdict and is never written
// anywhere; a step that needs it and finds it gone (the process that made
// it has stopped) ends the run Interrupted.
//
// The RTO clock starts when Provisioning starts and stops when the last
// check has answered. A verdict is reached at the latest in Validating and
// recorded before teardown; teardown removes the sandbox (or keeps a failed
// one for keepOnFailure), the run is Done, and Done's step counts it in its
// RestoreDrill's status and later removes a kept sandbox. Teardown is
// bounded by timeouts.teardown: past it the run is Done with its verdict and
// a SandboxLeaked condition naming what is left, which Done's step watches
// until it is gone. A run with a verdict holds no drill slot.
//
// Files follow the pipeline: admission.go, select.go, provision.go,
// restore.go, database.go, validating.go, teardown.go and record.go hold the
// steps; access.go the runs' Access; recovery.go and sweep.go what the
// leader does at start and periodically.
package drill
