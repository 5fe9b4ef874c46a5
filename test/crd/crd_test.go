package crd

import (
	"context"
	"os"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const restoreDrills = "../../deploy/crds/drills.drillerd.dev_restoredrills.yaml"

// spec is a minimal valid RestoreDrill spec with changes applied.
func spec(changes map[string]any) map[string]any {
	s := map[string]any{
		"source":   map[string]any{"persistentVolumeClaimName": "data-orders-0"},
		"database": map[string]any{"image": "postgres:16"},
	}
	for k, v := range changes {
		s[k] = v
	}
	return s
}

func TestAdmit(t *testing.T) {
	v, err := Load(restoreDrills, "v1alpha1")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		spec    map[string]any
		refusal string // "" = admitted
	}{
		{"minimal", spec(nil), ""},
		{"Europe/Berlin", spec(map[string]any{"schedule": "0 3 * * *", "timeZone": "Europe/Berlin"}), ""},
		{"a single-word zone", spec(map[string]any{"schedule": "0 3 * * *", "timeZone": "Japan"}), ""},
		{"an unknown zone", spec(map[string]any{"schedule": "0 3 * * *", "timeZone": "Mars/Olympus"}), "spec.timeZone: Invalid value: \"string\": unknown time zone Mars/Olympus evaluating rule: timeZone must be an IANA time zone name"},
		{"Local", spec(map[string]any{"schedule": "0 3 * * *", "timeZone": "Local"}), "spec.timeZone: Invalid value: \"Local\""},
		{"a zone without a schedule", spec(map[string]any{"timeZone": "UTC"}), "timeZone needs a schedule"},
		{"weekdays and a stepped range", spec(map[string]any{"schedule": "0 9-17/2 * JAN-MAR MON-FRI"}), ""},
		{"a range that ends before it begins", spec(map[string]any{"schedule": "0 5-3 * * *"}), "spec.schedule: Invalid value: \"0 5-3 * * *\": schedule has a range that ends before it begins"},
		{"a range of names that ends before it begins", spec(map[string]any{"schedule": "0 3 * * FRI-MON"}), "schedule has a range that ends before it begins"},
		{"a range of a name and a number", spec(map[string]any{"schedule": "0 3 * 3-JAN *"}), "schedule has a range that ends before it begins"},
		{"a step of zero", spec(map[string]any{"schedule": "*/0 * * * *"}), "steps of at least 1"},
		{"@every under a minute", spec(map[string]any{"schedule": "@every 30s"}), "schedule @every needs a duration of at least 1m"},
		{"a blank sql check", spec(map[string]any{"checks": []any{map[string]any{"name": "c", "sql": " \t", "expect": map[string]any{"notEmpty": true}}}}), "spec.checks[0].sql: Invalid value: \" \\t\": sql must not be blank"},
		{"a regex that does not compile", spec(map[string]any{"checks": []any{map[string]any{"name": "c", "sql": "SELECT 1", "expect": map[string]any{"regex": "(x"}}}}), "spec.checks[0].expect.regex: Invalid value: \"string\": error parsing regexp: missing closing ): `(x`"},
		{"min above max", spec(map[string]any{"checks": []any{map[string]any{"name": "c", "sql": "SELECT 1", "expect": map[string]any{"min": "10", "max": "9.5"}}}}), "expect.min is greater than expect.max"},
		{"a teardown timeout", spec(map[string]any{"timeouts": map[string]any{"teardown": "2m"}}), ""},
		{"a zero teardown timeout", spec(map[string]any{"timeouts": map[string]any{"teardown": "0s"}}), "spec.timeouts.teardown: Invalid value: \"0s\": timeouts.teardown must be a positive duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := v.Admit(context.Background(), v.Object("shop", "orders-db", tt.spec))
			got := errs.ToAggregate()
			switch {
			case tt.refusal == "" && got != nil:
				t.Errorf("refused: %v", got)
			case tt.refusal != "" && (got == nil || !strings.Contains(got.Error(), tt.refusal)):
				t.Errorf("refusal %v, want one saying %q", got, tt.refusal)
			}
		})
	}
}

func TestTheExampleIsAdmitted(t *testing.T) {
	v, err := Load(restoreDrills, "v1alpha1")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("../../deploy/examples/restoredrill.yaml")
	if err != nil {
		t.Fatal(err)
	}
	obj := map[string]any{}
	if err := yaml.Unmarshal(raw, &obj); err != nil {
		t.Fatal(err)
	}
	if errs := v.Admit(context.Background(), obj); len(errs) > 0 {
		t.Errorf("deploy/examples/restoredrill.yaml is refused: %v", errs.ToAggregate())
	}
	database := obj["spec"].(map[string]any)["database"].(map[string]any)
	if database["engine"] != "postgres" || database["port"] != int64(5432) {
		t.Errorf("database %v: the schema's defaults (engine postgres, port 5432) were not applied", database)
	}
}

func TestTheCRDsInstall(t *testing.T) {
	for _, path := range []string{restoreDrills, "../../deploy/crds/drills.drillerd.dev_drillruns.yaml"} {
		if _, err := Load(path, "v1alpha1"); err != nil {
			t.Error(err)
		}
	}
}
