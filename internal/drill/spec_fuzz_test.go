package drill

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/restore"
	"github.com/drillerd/drillerd/internal/runcert"
	"github.com/drillerd/drillerd/internal/scheduler"
	"github.com/drillerd/drillerd/test/crd"
)

// FuzzSpec feeds RestoreDrill specs, as JSON, to what the API server admits
// (the generated CRD's schema, defaults and CEL rules, run in-process) and
// to everything drillerd derives from a spec: defaults, the schedule in its
// time zone, the success window, the snapshot selector, the checks and
// their expectations, the freshness time zone, and the sandbox's objects.
// Nothing may panic, and drillerd must take every spec the API server
// admits: a spec it would refuse at run time (InvalidSpec, InvalidSchedule)
// is a rule missing from the CRD. `go test` runs the seeds of
// testdata/fuzz; `make fuzz` looks for more.
func FuzzSpec(f *testing.F) {
	v, err := crd.Load("../../deploy/crds/drills.drillerd.dev_restoredrills.yaml", "v1alpha1")
	if err != nil {
		f.Fatal(err)
	}
	// raw is a whole spec; the strings, when not empty, replace the fields
	// where most of drillerd's parsing is, so the fuzzer reaches them
	// without having to write JSON.
	f.Fuzz(func(t *testing.T, raw []byte, schedule, zone, sql, regex, minimum, maximum, duration string) {
		spec := map[string]any{}
		if json.Unmarshal(raw, &spec) != nil {
			spec = map[string]any{"source": map[string]any{"persistentVolumeClaimName": "data"}, "database": map[string]any{"image": "postgres:16"}}
		}
		overlay(spec, schedule, zone, sql, regex, minimum, maximum, duration)
		obj := v.Object("shop", "orders-db", spec)
		refused := v.Admit(context.Background(), obj)
		admitted, _ := json.Marshal(obj)
		drill := &drillsv1.RestoreDrill{}
		if err := json.Unmarshal(admitted, drill); err != nil {
			if len(refused) == 0 {
				t.Errorf("the API server admits %s, but it does not decode into a RestoreDrill (drillerd could not even list drills): %v", admitted, err)
			}
			return
		}
		findings := runTimeFindings(drill)
		if len(refused) == 0 && len(findings) > 0 {
			t.Errorf("the API server admits %s, but drillerd refuses it: %v", admitted, findings)
		}
	})
}

// overlay sets the fields of spec that the fuzzer's strings stand for.
func overlay(spec map[string]any, schedule, zone, sql, regex, minimum, maximum, duration string) {
	object := func(key string) map[string]any {
		m, ok := spec[key].(map[string]any)
		if !ok {
			m = map[string]any{}
			spec[key] = m
		}
		return m
	}
	if schedule != "" {
		spec["schedule"] = schedule
	}
	if zone != "" {
		spec["timeZone"] = zone
		object("freshness")["timeZone"] = zone
		object("freshness")["sql"] = "SELECT max(created_at) FROM orders"
	}
	if sql != "" || regex != "" || minimum != "" || maximum != "" {
		expect := map[string]any{}
		for key, value := range map[string]string{"regex": regex, "min": minimum, "max": maximum} {
			if value != "" {
				expect[key] = value
			}
		}
		if sql == "" {
			sql = "SELECT count(*) FROM orders"
		}
		checks, _ := spec["checks"].([]any)
		spec["checks"] = append(checks, map[string]any{"name": "fuzzed", "sql": sql, "expect": expect})
	}
	if duration != "" {
		object("timeouts")["teardown"] = duration
		object("sandbox")["keepOnFailure"] = duration
		object("freshness")["clockSkew"] = duration
		object("source")["maxSnapshotAge"] = duration
	}
}

// runTimeFindings is what drillerd would refuse in drill's spec while it
// schedules and runs it, and it builds the sandbox's objects from it.
func runTimeFindings(drill *drillsv1.RestoreDrill) []string {
	spec := drill.Spec
	var out []string
	for name, d := range map[string]time.Duration{
		"timeouts.total": spec.TotalTimeout(), "timeouts.teardown": spec.TeardownTimeout(),
		"timeouts.volume":   durationOr(spec.Timeouts.Volume, drillsv1.DefaultVolumeTimeout),
		"timeouts.database": durationOr(spec.Timeouts.Database, drillsv1.DefaultDatabaseTimeout),
		"timeouts.checks":   durationOr(spec.Timeouts.Checks, drillsv1.DefaultChecksTimeout),
	} {
		if d <= 0 {
			out = append(out, fmt.Sprintf("%s defaults to %s", name, d))
		}
	}
	if spec.Schedule != "" {
		if s, err := scheduler.Parse(spec.Schedule, ptr.Deref(spec.TimeZone, "")); err != nil {
			out = append(out, err.Error())
		} else {
			s.Next(t0)
			s.LatestTick(t0.Add(-48*time.Hour), t0)
		}
	}
	scheduler.SuccessWindow(drill, t0)
	if sel := spec.Source.SnapshotSelector; sel != nil {
		if _, err := metav1.LabelSelectorAsSelector(sel); err != nil {
			out = append(out, "spec.source.snapshotSelector: "+err.Error())
		}
	}
	for i, c := range checksOf(spec.Checks) {
		if err := c.Validate(i); err != nil {
			out = append(out, err.Error())
		}
		c.Expect.Describe()
	}
	if f := spec.Freshness; f != nil && f.TimeZone != "" {
		if _, err := time.LoadLocation(f.TimeZone); err != nil {
			out = append(out, "spec.freshness.timeZone: "+err.Error())
		}
	}
	run := newRun("r1").Of(drill.Name).Obj()
	sb := restore.Sandbox{Run: run, Drill: drill, DrillerdNamespace: "drillerd-system", DrillerdLabels: map[string]string{"app": "drillerd"}}
	sb.Namespace()
	sb.NetworkPolicy()
	sb.ContentCopy(&snapshotv1.VolumeSnapshotContent{}, "handle")
	sb.SnapshotCopy()
	sb.Claim(&corev1.PersistentVolumeClaim{}, ptr.To(resource.MustParse("1Gi")))
	now := time.Now()
	if certs, err := runcert.Issue(sb.CertificateRequest(now, now.Add(time.Hour))); err != nil {
		out = append(out, "the run's certificates: "+err.Error())
	} else {
		access := restore.Access{Certificates: certs, CheckRole: "drillerd_checks_r1"}
		sb.TLSSecret(access)
		sb.HBAConfigMap(access)
	}
	sb.DatabasePod()
	return out
}
