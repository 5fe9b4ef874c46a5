// Package drill is the DrillRun reconciler.
//
// # Design: an ordered list of re-entrant phases
//
//	SelectingSnapshot → Provisioning → RestoringVolume → StartingDatabase → Validating → TearingDown → Done
//
// Each phase looks at what already exists, does one thing, writes status and
// either moves on (within the same reconcile, so no time is lost between
// phases) or waits. Waiting is a watch: sandbox objects carry the run's
// labels and every change to them reconciles the run; a RequeueAfter at the
// phase's deadline covers "nothing happened". Deadlines derive from phase
// start times in status, so they survive restarts.
//
// The RTO clock starts when Provisioning starts and stops when the last
// check has answered. A verdict is reached at the latest in Validating and
// recorded before teardown; teardown removes the sandbox (or keeps a failed
// one for keepOnFailure) and then the run is Done.
package drill
