package drill_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/restore"
	"github.com/drillerd/drillerd/test/fixture"
)

// runLabels are drillerd's ownership labels of a run of drill.
func runLabels(uid, runName, runNamespace, drill string) map[string]string {
	return map[string]string{
		restore.LabelManagedBy: restore.ManagedByValue, restore.LabelRun: uid,
		restore.LabelRunName: runName, restore.LabelRunNamespace: runNamespace, restore.LabelDrill: drill,
	}
}

// without is a copy of labels less keys.
func without(labels map[string]string, keys ...string) map[string]string {
	out := maps.Clone(labels)
	for _, k := range keys {
		delete(out, k)
	}
	return out
}

// guards: namespaces, content copies and volumes that only look like
// drillerd's are never deleted or changed, through a drill and through the
// sweep of a drillerd restarted as after a crash. drillerd's own orphans
// (of a run that is gone) are swept in the same pass: the sweep ran, and
// went past every decoy.
func (p *production) guards(t *testing.T) {
	env := p.env
	// A finished run: its labels are real, and copied onto decoys.
	finished, code := p.run(t, p.newDrill("guarded").check("orders-present", "SELECT count(*) FROM orders", drillsv1.Expectation{Min: ptr.To("1")}))
	if code != 0 {
		t.Fatalf("the first drill: exit %d, %s", code, finished.Status.Message)
	}
	tag := fmt.Sprintf("%05d", rand.IntN(100000))
	ghostUID := func(n int) string { return fmt.Sprintf("00000000-0000-4000-800%d-0000000%s", n, tag) } // runs that never existed
	ghost, ghostToo := ghostUID(1), ghostUID(2)
	ghostLabels := runLabels(ghost, "no-such-run-"+tag, p.ns, "ghost")
	ghostTooLabels := runLabels(ghostToo, "no-such-run-either-"+tag, p.ns, "ghost")
	realLabels := runLabels(string(finished.UID), finished.Name, finished.Namespace, "guarded")
	ghostSandbox := restore.NamespaceName("ghost", ghost)

	namespace := func(name string, labels map[string]string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	}
	content := func(name string, labels map[string]string, policy snapshotv1.DeletionPolicy) *snapshotv1.VolumeSnapshotContent {
		return &snapshotv1.VolumeSnapshotContent{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Spec: snapshotv1.VolumeSnapshotContentSpec{
				DeletionPolicy: policy, Driver: "hostpath.csi.drillerd.dev",
				Source:            snapshotv1.VolumeSnapshotContentSource{SnapshotHandle: ptr.To("decoy-" + name)},
				VolumeSnapshotRef: corev1.ObjectReference{Namespace: "drill-nowhere-" + tag, Name: restore.SourceSnapshotName},
			},
		}
	}
	// A volume reserved for a claim (a claimRef without a UID) that is not
	// there: the cluster's controllers leave it Available. It carries the
	// protection finalizer the cluster would add.
	volume := func(name string, labels map[string]string, policy corev1.PersistentVolumeReclaimPolicy, claimNamespace, claimName string) *corev1.PersistentVolume {
		return &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Finalizers: []string{"kubernetes.io/pv-protection"}},
			Spec: corev1.PersistentVolumeSpec{
				Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
				AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				PersistentVolumeReclaimPolicy: policy,
				StorageClassName:              "decoy-" + tag,
				PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/nonexistent/decoy-" + tag}},
				ClaimRef:                      &corev1.ObjectReference{Kind: "PersistentVolumeClaim", Namespace: claimNamespace, Name: claimName},
			},
		}
	}

	decoyNamespaces := []*corev1.Namespace{
		namespace("drill-decoy-"+tag, nil),                                                             // the prefix, not the labels
		namespace("decoy-"+tag, ghostLabels),                                                           // the labels, not the prefix
		namespace("drill-made-up-"+tag, ghostTooLabels),                                                // the prefix and the labels of a run that does not exist
		namespace("drill-copied-"+tag, realLabels),                                                     // the labels of a finished run it was not made for
		namespace(restore.NamespaceName("ghost", ghostToo), without(ghostTooLabels, restore.LabelRun)), // a sandbox's name, no run
	}
	decoyContents := []*snapshotv1.VolumeSnapshotContent{
		content("drill-"+ghostToo, ghostTooLabels, snapshotv1.VolumeSnapshotContentDelete),                          // a copy's labels and name, but Delete
		content("drill-norun-"+tag, without(ghostLabels, restore.LabelRun), snapshotv1.VolumeSnapshotContentRetain), // labelled, no run
		content("drill-copied-"+tag, realLabels, snapshotv1.VolumeSnapshotContentRetain),                            // a finished run's labels, another name
	}
	decoyVolumes := []*corev1.PersistentVolume{
		volume("decoy-delete-"+tag, ghostLabels, corev1.PersistentVolumeReclaimDelete, ghostSandbox, restore.DataClaimName),                           // reclaimPolicy Delete already
		volume("decoy-norun-"+tag, without(ghostLabels, restore.LabelRun), corev1.PersistentVolumeReclaimRetain, ghostSandbox, restore.DataClaimName), // labelled, no run
		volume("decoy-prod-"+tag, ghostLabels, corev1.PersistentVolumeReclaimRetain, p.ns, p.pg.ClaimName()),                                          // labelled, reserved for the production claim
		volume("decoy-other-"+tag, ghostLabels, corev1.PersistentVolumeReclaimRetain, finished.Status.SandboxNamespace, restore.DataClaimName),        // labelled, another run's sandbox claim
	}
	// drillerd's own orphans, of the ghost run: the sweep removes these.
	orphanNamespace := namespace(ghostSandbox, ghostLabels)
	orphanContent := content("drill-"+ghost, ghostLabels, snapshotv1.VolumeSnapshotContentRetain)
	orphanVolume := volume("orphan-"+tag, ghostLabels, corev1.PersistentVolumeReclaimRetain, ghostSandbox, restore.DataClaimName)

	var decoys []fixture.ObjectRef
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	for _, ns := range append(decoyNamespaces, orphanNamespace) {
		_, err := env.Client.CoreV1().Namespaces().Create(env.Ctx, ns, metav1.CreateOptions{})
		must("creating namespace "+ns.Name, err)
		t.Cleanup(func() { env.DeleteNamespace(context.Background(), ns.Name) })
		if ns != orphanNamespace {
			decoys = append(decoys, fixture.Ref(ns, "", ns.Name))
		}
	}
	contents := env.Snapshots.SnapshotV1().VolumeSnapshotContents()
	for _, c := range append(decoyContents, orphanContent) {
		_, err := contents.Create(env.Ctx, c, metav1.CreateOptions{})
		must("creating VolumeSnapshotContent "+c.Name, err)
		t.Cleanup(func() { _ = contents.Delete(context.Background(), c.Name, metav1.DeleteOptions{}) })
		if c != orphanContent {
			decoys = append(decoys, fixture.Ref(c, "", c.Name))
		}
	}
	pvs := env.Client.CoreV1().PersistentVolumes()
	for _, pv := range append(decoyVolumes, orphanVolume) {
		_, err := pvs.Create(env.Ctx, pv, metav1.CreateOptions{})
		must("creating PersistentVolume "+pv.Name, err)
		t.Cleanup(func() { _ = pvs.Delete(context.Background(), pv.Name, metav1.DeleteOptions{}) })
		if pv != orphanVolume {
			decoys = append(decoys, fixture.Ref(pv, "", pv.Name))
		}
	}
	watched := env.Objects(decoys...)

	// A drill with the decoys around.
	if run, code := p.run(t, p.newDrill("guarded-again").check("orders-present", "SELECT count(*) FROM orders", drillsv1.Expectation{Min: ptr.To("1")})); code != 0 {
		t.Fatalf("the drill among the decoys: exit %d, %s", code, run.Status.Message)
	}
	// drillerd crashes and comes back: its start-up sweep removes its
	// orphans and nothing else. The content copy is the last kind it
	// sweeps, so once the orphaned copy is gone the sweep went past every
	// decoy.
	daemon.Kill()
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	env.WaitFor(fixture.Scaled(60*time.Second), "the start-up sweep to remove drillerd's orphans", func(ctx context.Context) (bool, error) {
		if _, err := env.Client.CoreV1().Namespaces().Get(ctx, orphanNamespace.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return false, fmt.Errorf("orphaned namespace %s still there (%v)", orphanNamespace.Name, err)
		}
		pv, err := pvs.Get(ctx, orphanVolume.Name, metav1.GetOptions{})
		if err != nil || pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete {
			return false, fmt.Errorf("orphaned volume %s not released (%v)", orphanVolume.Name, err)
		}
		if _, err := contents.Get(ctx, orphanContent.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return false, fmt.Errorf("orphaned content copy %s still there (%v)", orphanContent.Name, err)
		}
		return true, nil
	})
	watched.AssertUntouched(drillerdUsers...)
}

// specValidation: the API server itself accepts every IANA zone, single
// words too, and refuses an unknown zone, Local, a teardown timeout that
// is not positive, and what drillerd would refuse at run time (schedules
// the cron parser refuses, blank checks, regexes that do not compile,
// bounds no value can meet), naming the field.
func (p *production) specValidation(t *testing.T) {
	tests := []struct {
		name    string
		set     func(*drillsv1.RestoreDrillSpec)
		refusal string // "" = accepted; else in the API server's message
	}{
		{"Europe/Berlin", func(s *drillsv1.RestoreDrillSpec) { s.Schedule, s.TimeZone = "0 3 * * *", ptr.To("Europe/Berlin") }, ""},
		{"a single-word zone: Japan", func(s *drillsv1.RestoreDrillSpec) { s.Schedule, s.TimeZone = "0 3 * * *", ptr.To("Japan") }, ""},
		{"UTC", func(s *drillsv1.RestoreDrillSpec) { s.Schedule, s.TimeZone = "0 3 * * *", ptr.To("UTC") }, ""},
		{"three levels: America/Argentina/Buenos_Aires", func(s *drillsv1.RestoreDrillSpec) {
			s.Schedule, s.TimeZone = "0 3 * * *", ptr.To("America/Argentina/Buenos_Aires")
		}, ""},
		{"an unknown zone", func(s *drillsv1.RestoreDrillSpec) { s.Schedule, s.TimeZone = "0 3 * * *", ptr.To("Mars/Olympus") },
			"spec.timeZone: Invalid value: \"string\": unknown time zone Mars/Olympus evaluating rule: timeZone must be an IANA time zone name such as Europe/Berlin, Japan or UTC"},
		{"an unknown single word", func(s *drillsv1.RestoreDrillSpec) { s.Schedule, s.TimeZone = "0 3 * * *", ptr.To("Atlantis") },
			"spec.timeZone: Invalid value: \"string\": unknown time zone Atlantis"},
		{"the machine's zone", func(s *drillsv1.RestoreDrillSpec) { s.Schedule, s.TimeZone = "0 3 * * *", ptr.To("Local") },
			"spec.timeZone: Invalid value: \"Local\": timeZone must be an IANA time zone name"},
		{"an unknown freshness zone", func(s *drillsv1.RestoreDrillSpec) {
			s.Freshness = &drillsv1.FreshnessSpec{SQL: "SELECT max(created_at) FROM orders", TimeZone: "Europe/Atlantis"}
		}, "spec.freshness.timeZone: Invalid value: \"string\": unknown time zone Europe/Atlantis"},
		{"a teardown timeout of zero", func(s *drillsv1.RestoreDrillSpec) { s.Timeouts.Teardown = &metav1.Duration{} },
			"spec.timeouts.teardown: Invalid value: \"0s\": timeouts.teardown must be a positive duration"},
		// What the fuzzer found the API server admitted and drillerd refused.
		{"a range that ends before it begins", func(s *drillsv1.RestoreDrillSpec) { s.Schedule = "0 3 * * FRI-MON" },
			"spec.schedule: Invalid value: \"0 3 * * FRI-MON\": schedule has a range that ends before it begins"},
		{"a step of zero", func(s *drillsv1.RestoreDrillSpec) { s.Schedule = "*/0 * * * *" }, "steps of at least 1"},
		{"@every under a minute", func(s *drillsv1.RestoreDrillSpec) { s.Schedule = "@every 30s" }, "schedule @every needs a duration of at least 1m"},
		{"a blank check", func(s *drillsv1.RestoreDrillSpec) {
			s.Checks = []drillsv1.Check{{Name: "blank", SQL: "  ", Expect: &drillsv1.Expectation{NotEmpty: true}}}
		}, "spec.checks[0].sql: Invalid value: \"  \": sql must not be blank"},
		{"a regex that does not compile", func(s *drillsv1.RestoreDrillSpec) {
			s.Checks = []drillsv1.Check{{Name: "version", SQL: "SELECT version()", Expect: &drillsv1.Expectation{Regex: ptr.To("(PostgreSQL")}}}
		}, "spec.checks[0].expect.regex: Invalid value: \"string\": error parsing regexp: missing closing )"},
		{"min above max", func(s *drillsv1.RestoreDrillSpec) {
			s.Checks = []drillsv1.Check{{Name: "count", SQL: "SELECT 1", Expect: &drillsv1.Expectation{Min: ptr.To("10"), Max: ptr.To("9")}}}
		}, "expect.min is greater than expect.max"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := p.newDrill("validated")
			tt.set(&d.d.Spec)
			err := p.c.Create(p.env.Ctx, d.d, client.DryRunAll)
			switch {
			case tt.refusal == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.refusal != "" && (!apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tt.refusal)):
				t.Errorf("error %v, want Invalid saying %q", err, tt.refusal)
			}
		})
	}
}
