package builder_test

import (
	"testing"
	"time"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/diff"
	"k8s.io/utils/ptr"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/builder"
)

var t0 = time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)

func dur(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

func expectObject(t *testing.T, got, want any) {
	t.Helper()
	if !equality.Semantic.DeepEqual(got, want) {
		t.Errorf("built object differs (-want +got):\n%s", diff.Diff(want, got))
	}
}

func TestDrillBuilder(t *testing.T) {
	drillMeta := metav1.TypeMeta{APIVersion: "drills.drillerd.dev/v1alpha1", Kind: "RestoreDrill"}
	tests := []struct {
		name string
		got  *drillsv1.RestoreDrill
		want *drillsv1.RestoreDrill
	}{
		{
			name: "nothing but the name",
			got:  builder.ForDrill("prod", "orders-db").Obj(),
			want: &drillsv1.RestoreDrill{TypeMeta: drillMeta, ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "orders-db"}},
		},
		{
			name: "every setter",
			got: builder.ForDrill("prod", "orders-db").UID("drill-uid").Created(t0).
				Schedule("0 3 * * *").TimeZone("Europe/Berlin").Suspended().History(3).
				Source("data-orders-0").SnapshotSelector(map[string]string{"backup": "nightly"}).MaxSnapshotAge(48*time.Hour).
				StorageClass("fast").KeepOnFailure(time.Hour).
				Image("postgres:16").DataSubPath("pgdata").DatabaseName("app").Port(5433).Args("-c", "work_mem=8MB").
				AuthSecret("db-creds", "user", "pass").
				SQLCheck("orders-present", "SELECT count(*) FROM orders", drillsv1.Expectation{Min: ptr.To("1000")}).
				Builtin(drillsv1.BuiltinAmcheck).
				Check(drillsv1.Check{Name: "users", SQL: "SELECT 1", Expect: &drillsv1.Expectation{NotEmpty: true}}).
				Freshness("SELECT max(created_at) FROM orders").
				Targets(15*time.Minute, 26*time.Hour).SuccessWindow(49 * time.Hour).
				TotalTimeout(time.Hour).VolumeTimeout(20 * time.Minute).DatabaseTimeout(10 * time.Minute).ChecksTimeout(5 * time.Minute).TeardownTimeout(2 * time.Minute).
				Status(func(s *drillsv1.RestoreDrillStatus) { s.SkippedTicks = map[string]int64{"AlreadyRunning": 1} }).
				Obj(),
			want: &drillsv1.RestoreDrill{
				TypeMeta:   drillMeta,
				ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "orders-db", UID: "drill-uid", CreationTimestamp: metav1.NewTime(t0)},
				Spec: drillsv1.RestoreDrillSpec{
					Schedule: "0 3 * * *", TimeZone: ptr.To("Europe/Berlin"), Suspend: true, HistoryLimit: ptr.To[int32](3),
					Source: drillsv1.SourceSpec{
						PersistentVolumeClaimName: "data-orders-0",
						SnapshotSelector:          &metav1.LabelSelector{MatchLabels: map[string]string{"backup": "nightly"}},
						MaxSnapshotAge:            dur(48 * time.Hour),
					},
					Sandbox: drillsv1.SandboxSpec{StorageClassName: ptr.To("fast"), KeepOnFailure: dur(time.Hour)},
					Database: drillsv1.DatabaseSpec{
						Image: "postgres:16", DataSubPath: "pgdata", DatabaseName: "app", Port: 5433, Args: []string{"-c", "work_mem=8MB"},
						Auth: drillsv1.AuthSpec{Mode: drillsv1.AuthSecret, SecretRef: &drillsv1.SecretCredentials{Name: "db-creds", UsernameKey: "user", PasswordKey: "pass"}},
					},
					Checks: []drillsv1.Check{
						{Name: "orders-present", SQL: "SELECT count(*) FROM orders", Expect: &drillsv1.Expectation{Min: ptr.To("1000")}},
						{Builtin: drillsv1.BuiltinAmcheck},
						{Name: "users", SQL: "SELECT 1", Expect: &drillsv1.Expectation{NotEmpty: true}},
					},
					Freshness: &drillsv1.FreshnessSpec{SQL: "SELECT max(created_at) FROM orders"},
					Targets:   drillsv1.Targets{RTO: dur(15 * time.Minute), RPO: dur(26 * time.Hour), SuccessWindow: dur(49 * time.Hour)},
					Timeouts:  drillsv1.Timeouts{Total: dur(time.Hour), Volume: dur(20 * time.Minute), Database: dur(10 * time.Minute), Checks: dur(5 * time.Minute), Teardown: dur(2 * time.Minute)},
				},
				Status: drillsv1.RestoreDrillStatus{SkippedTicks: map[string]int64{"AlreadyRunning": 1}},
			},
		},
		{
			name: "a zero target stays unset; trust auth names its user",
			got:  builder.ForDrill("prod", "orders-db").Targets(0, 26*time.Hour).AuthUser("drills").Obj(),
			want: &drillsv1.RestoreDrill{
				TypeMeta:   drillMeta,
				ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "orders-db"},
				Spec: drillsv1.RestoreDrillSpec{
					Targets:  drillsv1.Targets{RPO: dur(26 * time.Hour)},
					Database: drillsv1.DatabaseSpec{Auth: drillsv1.AuthSpec{Mode: drillsv1.AuthTrust, User: "drills"}},
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { expectObject(t, tt.got, tt.want) })
	}
}

func TestRunBuilder(t *testing.T) {
	runMeta := metav1.TypeMeta{APIVersion: "drills.drillerd.dev/v1alpha1", Kind: "DrillRun"}
	drill := builder.ForDrill("prod", "orders-db").UID("drill-uid").Obj()
	start := metav1.NewMicroTime(t0)
	mid := metav1.NewMicroTime(t0.Add(90 * time.Second))
	tests := []struct {
		name string
		got  *drillsv1.DrillRun
		want *drillsv1.DrillRun
	}{
		{
			name: "a new run has a UID from its name",
			got:  builder.ForRun("prod", "r1").Of("orders-db").Obj(),
			want: &drillsv1.DrillRun{
				TypeMeta:   runMeta,
				ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "r1", UID: "uid-r1"},
				Spec:       drillsv1.DrillRunSpec{DrillName: "orders-db"},
			},
		},
		{
			name: "every setter",
			got: builder.ForRun("prod", "r2").UID("u2").Created(t0).Labels(map[string]string{drillsv1.LabelDrill: "orders-db"}).OwnedBy(drill).
				Of("orders-db").Trigger(drillsv1.TriggerSchedule).Pinned("nightly").ScheduledAt(t0).
				In(drillsv1.PhaseTearingDown).Result(drillsv1.ResultFailed).Reason("RTOTargetMissed").Message("too slow").
				StartedAt(t0).Deadline(t0.Add(time.Hour)).CompletedAt(t0.Add(2*time.Minute)).
				Sandbox("drill-orders-db-abc").SandboxRemoved().KeptUntil(t0.Add(3*time.Hour)).
				PhaseTiming(drillsv1.PhaseRestoringVolume, t0, t0.Add(90*time.Second)).
				PhaseTiming(drillsv1.PhaseStartingDatabase, t0.Add(90*time.Second), time.Time{}).
				Snapshot(drillsv1.SnapshotRef{Name: "nightly", ContentName: "content-nightly"}).
				RTO(120, ptr.To(60.0), false).RPO(3600, nil, true, drillsv1.RPOBasisSnapshot).
				Recorded().
				Status(func(s *drillsv1.DrillRunStatus) { s.VolumeName = "pv-1" }).
				Obj(),
			want: &drillsv1.DrillRun{
				TypeMeta: runMeta,
				ObjectMeta: metav1.ObjectMeta{
					Namespace: "prod", Name: "r2", UID: "u2", CreationTimestamp: metav1.NewTime(t0),
					Labels: map[string]string{drillsv1.LabelDrill: "orders-db"},
					OwnerReferences: []metav1.OwnerReference{{
						APIVersion: "drills.drillerd.dev/v1alpha1", Kind: "RestoreDrill", Name: "orders-db", UID: "drill-uid",
						Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
					}},
				},
				Spec: drillsv1.DrillRunSpec{DrillName: "orders-db", Trigger: drillsv1.TriggerSchedule, SnapshotName: "nightly", ScheduledTime: &metav1.Time{Time: t0}},
				Status: drillsv1.DrillRunStatus{
					Phase: drillsv1.PhaseTearingDown, Result: drillsv1.ResultFailed, Reason: "RTOTargetMissed", Message: "too slow",
					StartTime: &metav1.Time{Time: t0}, Deadline: &metav1.Time{Time: t0.Add(time.Hour)}, CompletionTime: &metav1.Time{Time: t0.Add(2 * time.Minute)},
					SandboxNamespace: "drill-orders-db-abc", SandboxRemoved: true, SandboxExpiry: &metav1.Time{Time: t0.Add(3 * time.Hour)},
					Phases: []drillsv1.PhaseTiming{
						{Name: drillsv1.PhaseRestoringVolume, StartTime: start, EndTime: &mid, Seconds: ptr.To(90.0)},
						{Name: drillsv1.PhaseStartingDatabase, StartTime: mid},
					},
					Snapshot:   &drillsv1.SnapshotRef{Name: "nightly", ContentName: "content-nightly"},
					RTO:        &drillsv1.RTOMeasurement{Seconds: 120, TargetSeconds: ptr.To(60.0), Met: false},
					RPO:        &drillsv1.RPOMeasurement{Seconds: 3600, Met: true, Basis: drillsv1.RPOBasisSnapshot},
					Recorded:   true,
					VolumeName: "pv-1",
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { expectObject(t, tt.got, tt.want) })
	}
}

func TestSnapshotBuilder(t *testing.T) {
	snapMeta := metav1.TypeMeta{APIVersion: "snapshot.storage.k8s.io/v1", Kind: "VolumeSnapshot"}
	meta := metav1.ObjectMeta{Namespace: "prod", Name: "nightly"}
	source := snapshotv1.VolumeSnapshotSpec{Source: snapshotv1.VolumeSnapshotSource{PersistentVolumeClaimName: ptr.To("data-orders-0")}}
	tests := []struct {
		name string
		got  *snapshotv1.VolumeSnapshot
		want *snapshotv1.VolumeSnapshot
	}{
		{
			name: "not yet seen by the snapshot controller",
			got:  builder.ForSnapshot("prod", "nightly").Of("data-orders-0").Obj(),
			want: &snapshotv1.VolumeSnapshot{TypeMeta: snapMeta, ObjectMeta: meta, Spec: source},
		},
		{
			name: "ready: bound to its content by default, labelled, sized",
			got:  builder.ForSnapshot("prod", "nightly").Of("data-orders-0").Labeled("backup", "nightly").ReadyAt(t0).RestoreSize("1Gi").Obj(),
			want: &snapshotv1.VolumeSnapshot{
				TypeMeta:   snapMeta,
				ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "nightly", Labels: map[string]string{"backup": "nightly"}},
				Spec:       source,
				Status: &snapshotv1.VolumeSnapshotStatus{
					ReadyToUse: ptr.To(true), CreationTime: &metav1.Time{Time: t0},
					BoundVolumeSnapshotContentName: ptr.To("content-nightly"), RestoreSize: ptr.To(resource.MustParse("1Gi")),
				},
			},
		},
		{
			name: "a content named before ReadyAt stays",
			got:  builder.ForSnapshot("prod", "nightly").BoundTo("snapcontent-1").ReadyAt(t0).Obj(),
			want: &snapshotv1.VolumeSnapshot{
				TypeMeta: snapMeta, ObjectMeta: meta,
				Status: &snapshotv1.VolumeSnapshotStatus{ReadyToUse: ptr.To(true), CreationTime: &metav1.Time{Time: t0}, BoundVolumeSnapshotContentName: ptr.To("snapcontent-1")},
			},
		},
		{
			name: "still being cut",
			got:  builder.ForSnapshot("prod", "nightly").NotReady().Obj(),
			want: &snapshotv1.VolumeSnapshot{TypeMeta: snapMeta, ObjectMeta: meta, Status: &snapshotv1.VolumeSnapshotStatus{ReadyToUse: ptr.To(false)}},
		},
		{
			name: "failed",
			got:  builder.ForSnapshot("prod", "nightly").Failed("disk on fire").Obj(),
			want: &snapshotv1.VolumeSnapshot{
				TypeMeta: snapMeta, ObjectMeta: meta,
				Status: &snapshotv1.VolumeSnapshotStatus{ReadyToUse: ptr.To(false), Error: &snapshotv1.VolumeSnapshotError{Message: ptr.To("disk on fire")}},
			},
		},
		{
			name: "being deleted, held by the snapshot controller",
			got:  builder.ForSnapshot("prod", "nightly").Deleting().Deleting().Obj(),
			want: &snapshotv1.VolumeSnapshot{
				TypeMeta: snapMeta,
				ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "nightly", DeletionTimestamp: &metav1.Time{Time: time.Unix(0, 0).UTC()},
					Finalizers: []string{builder.SnapshotFinalizer}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { expectObject(t, tt.got, tt.want) })
	}
}

func TestContentAndClaimBuilders(t *testing.T) {
	content := builder.ForContent("snapcontent-1").Labels(map[string]string{"a": "1"}).Driver("hostpath").
		DeletionPolicy(snapshotv1.VolumeSnapshotContentRetain).VolumeHandle("vol-1").BoundTo("prod", "nightly").Handle("snap-1").Ready().Obj()
	expectObject(t, content, &snapshotv1.VolumeSnapshotContent{
		TypeMeta:   metav1.TypeMeta{APIVersion: "snapshot.storage.k8s.io/v1", Kind: "VolumeSnapshotContent"},
		ObjectMeta: metav1.ObjectMeta{Name: "snapcontent-1", Labels: map[string]string{"a": "1"}},
		Spec: snapshotv1.VolumeSnapshotContentSpec{
			Driver: "hostpath", DeletionPolicy: snapshotv1.VolumeSnapshotContentRetain,
			Source:            snapshotv1.VolumeSnapshotContentSource{VolumeHandle: ptr.To("vol-1")},
			VolumeSnapshotRef: corev1.ObjectReference{Namespace: "prod", Name: "nightly"},
		},
		Status: &snapshotv1.VolumeSnapshotContentStatus{SnapshotHandle: ptr.To("snap-1"), ReadyToUse: ptr.To(true)},
	})

	claim := builder.ForClaim("prod", "data-orders-0").StorageClass("fast").Size("1Gi").Obj()
	expectObject(t, claim, &corev1.PersistentVolumeClaim{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "data-orders-0"},
		Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: ptr.To("fast"), Resources: corev1.VolumeResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
		}},
	})
}
