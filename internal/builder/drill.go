package builder

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
)

// DrillBuilder builds a RestoreDrill.
type DrillBuilder struct {
	d *drillsv1.RestoreDrill
}

// ForDrill starts a RestoreDrill named name in namespace, with an empty spec
// and status.
func ForDrill(namespace, name string) *DrillBuilder {
	return &DrillBuilder{d: &drillsv1.RestoreDrill{
		TypeMeta:   metav1.TypeMeta{APIVersion: drillsv1.GroupVersion.String(), Kind: "RestoreDrill"},
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
	}}
}

// Obj returns the built RestoreDrill.
func (b *DrillBuilder) Obj() *drillsv1.RestoreDrill { return b.d }

// UID sets metadata.uid.
func (b *DrillBuilder) UID(uid types.UID) *DrillBuilder {
	b.d.UID = uid
	return b
}

// Created sets metadata.creationTimestamp.
func (b *DrillBuilder) Created(t time.Time) *DrillBuilder {
	b.d.CreationTimestamp = metav1.NewTime(t)
	return b
}

// Schedule sets spec.schedule, a cron expression or descriptor.
func (b *DrillBuilder) Schedule(cron string) *DrillBuilder {
	b.d.Spec.Schedule = cron
	return b
}

// TimeZone sets spec.timeZone, an IANA time zone name.
func (b *DrillBuilder) TimeZone(tz string) *DrillBuilder {
	b.d.Spec.TimeZone = &tz
	return b
}

// Suspended sets spec.suspend.
func (b *DrillBuilder) Suspended() *DrillBuilder {
	b.d.Spec.Suspend = true
	return b
}

// History sets spec.historyLimit, how many finished runs are kept.
func (b *DrillBuilder) History(n int32) *DrillBuilder {
	b.d.Spec.HistoryLimit = &n
	return b
}

// Source sets spec.source.persistentVolumeClaimName, the claim whose
// snapshots are drilled.
func (b *DrillBuilder) Source(pvcName string) *DrillBuilder {
	b.d.Spec.Source.PersistentVolumeClaimName = pvcName
	return b
}

// SnapshotSelector sets spec.source.snapshotSelector to match snapshots
// carrying all of matchLabels.
func (b *DrillBuilder) SnapshotSelector(matchLabels map[string]string) *DrillBuilder {
	b.d.Spec.Source.SnapshotSelector = &metav1.LabelSelector{MatchLabels: matchLabels}
	return b
}

// MaxSnapshotAge sets spec.source.maxSnapshotAge.
func (b *DrillBuilder) MaxSnapshotAge(d time.Duration) *DrillBuilder {
	b.d.Spec.Source.MaxSnapshotAge = duration(d)
	return b
}

// StorageClass sets spec.sandbox.storageClassName, the class the restore
// goes onto.
func (b *DrillBuilder) StorageClass(name string) *DrillBuilder {
	b.d.Spec.Sandbox.StorageClassName = &name
	return b
}

// KeepOnFailure sets spec.sandbox.keepOnFailure.
func (b *DrillBuilder) KeepOnFailure(d time.Duration) *DrillBuilder {
	b.d.Spec.Sandbox.KeepOnFailure = duration(d)
	return b
}

// Image sets spec.database.image.
func (b *DrillBuilder) Image(img string) *DrillBuilder {
	b.d.Spec.Database.Image = img
	return b
}

// DataSubPath sets spec.database.dataSubPath, where PGDATA lives inside the
// volume.
func (b *DrillBuilder) DataSubPath(p string) *DrillBuilder {
	b.d.Spec.Database.DataSubPath = p
	return b
}

// DatabaseName sets spec.database.databaseName, the database the checks
// connect to.
func (b *DrillBuilder) DatabaseName(n string) *DrillBuilder {
	b.d.Spec.Database.DatabaseName = n
	return b
}

// Port sets spec.database.port.
func (b *DrillBuilder) Port(p int32) *DrillBuilder {
	b.d.Spec.Database.Port = p
	return b
}

// Args appends to spec.database.args, the extra server arguments.
func (b *DrillBuilder) Args(args ...string) *DrillBuilder {
	b.d.Spec.Database.Args = append(b.d.Spec.Database.Args, args...)
	return b
}

// AuthUser sets spec.database.auth to mode Trust with user u.
func (b *DrillBuilder) AuthUser(u string) *DrillBuilder {
	b.d.Spec.Database.Auth.Mode = drillsv1.AuthTrust
	b.d.Spec.Database.Auth.User = u
	return b
}

// AuthSecret sets spec.database.auth to mode Secret with the user name and
// password under userKey and passKey of the Secret name.
func (b *DrillBuilder) AuthSecret(name, userKey, passKey string) *DrillBuilder {
	b.d.Spec.Database.Auth.Mode = drillsv1.AuthSecret
	b.d.Spec.Database.Auth.SecretRef = &drillsv1.SecretCredentials{Name: name, UsernameKey: userKey, PasswordKey: passKey}
	return b
}

// Check appends c to spec.checks.
func (b *DrillBuilder) Check(c drillsv1.Check) *DrillBuilder {
	b.d.Spec.Checks = append(b.d.Spec.Checks, c)
	return b
}

// SQLCheck appends a SQL check to spec.checks.
func (b *DrillBuilder) SQLCheck(name, sql string, expect drillsv1.Expectation) *DrillBuilder {
	return b.Check(drillsv1.Check{Name: name, SQL: sql, Expect: &expect})
}

// Builtin appends a built-in check, named after its builtin, to spec.checks.
func (b *DrillBuilder) Builtin(name drillsv1.Builtin) *DrillBuilder {
	return b.Check(drillsv1.Check{Builtin: name})
}

// Freshness sets spec.freshness.sql, the query for the newest write.
func (b *DrillBuilder) Freshness(sql string) *DrillBuilder {
	b.d.Spec.Freshness = &drillsv1.FreshnessSpec{SQL: sql}
	return b
}

// Targets sets spec.targets.rto and spec.targets.rpo; a zero duration
// leaves that target unset.
func (b *DrillBuilder) Targets(rto, rpo time.Duration) *DrillBuilder {
	b.d.Spec.Targets.RTO = durationOrNil(rto)
	b.d.Spec.Targets.RPO = durationOrNil(rpo)
	return b
}

// SuccessWindow sets spec.targets.successWindow.
func (b *DrillBuilder) SuccessWindow(d time.Duration) *DrillBuilder {
	b.d.Spec.Targets.SuccessWindow = duration(d)
	return b
}

// RTOTrendHorizon sets spec.targets.rtoTrendHorizon, how far ahead the RTO
// is forecast.
func (b *DrillBuilder) RTOTrendHorizon(d time.Duration) *DrillBuilder {
	b.d.Spec.Targets.RTOTrendHorizon = duration(d)
	return b
}

// TotalTimeout sets spec.timeouts.total.
func (b *DrillBuilder) TotalTimeout(d time.Duration) *DrillBuilder {
	b.d.Spec.Timeouts.Total = duration(d)
	return b
}

// VolumeTimeout sets spec.timeouts.volume.
func (b *DrillBuilder) VolumeTimeout(d time.Duration) *DrillBuilder {
	b.d.Spec.Timeouts.Volume = duration(d)
	return b
}

// DatabaseTimeout sets spec.timeouts.database.
func (b *DrillBuilder) DatabaseTimeout(d time.Duration) *DrillBuilder {
	b.d.Spec.Timeouts.Database = duration(d)
	return b
}

// TeardownTimeout sets spec.timeouts.teardown.
func (b *DrillBuilder) TeardownTimeout(d time.Duration) *DrillBuilder {
	b.d.Spec.Timeouts.Teardown = duration(d)
	return b
}

// ChecksTimeout sets spec.timeouts.checks.
func (b *DrillBuilder) ChecksTimeout(d time.Duration) *DrillBuilder {
	b.d.Spec.Timeouts.Checks = duration(d)
	return b
}

// Status calls set on the drill's status, for what drillerd records there
// (lastRun, runCounts, skippedTicks, conditions, ...).
func (b *DrillBuilder) Status(set func(*drillsv1.RestoreDrillStatus)) *DrillBuilder {
	set(&b.d.Status)
	return b
}

// duration is d as an API duration.
func duration(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

// durationOrNil is d as an API duration, or nil when d is zero.
func durationOrNil(d time.Duration) *metav1.Duration {
	if d == 0 {
		return nil
	}
	return duration(d)
}
