package drill

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
)

func TestConnConfigReachesThePodWithAndWithoutTLS(t *testing.T) {
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "creds"},
		Data:       map[string][]byte{"user": []byte("app"), "pass": []byte(`p'w\d`)},
	}
	tests := []struct {
		name               string
		db                 drillsv1.DatabaseSpec
		wantUser, wantPass string
		wantDB             string
		wantPort           uint16
		wantErr            string
	}{
		{"trust with defaults", drillsv1.DatabaseSpec{}, "postgres", "", "postgres", 5432, ""},
		{"trust user, odd database name, port", drillsv1.DatabaseSpec{DatabaseName: `shop's db`, Port: 6432, Auth: drillsv1.AuthSpec{User: "shop"}}, "shop", "", `shop's db`, 6432, ""},
		{"secret", drillsv1.DatabaseSpec{Auth: drillsv1.AuthSpec{Mode: drillsv1.AuthSecret, SecretRef: &drillsv1.SecretCredentials{Name: "creds", UsernameKey: "user", PasswordKey: "pass"}}}, "app", `p'w\d`, "postgres", 5432, ""},
		{"secret without the key", drillsv1.DatabaseSpec{Auth: drillsv1.AuthSpec{Mode: drillsv1.AuthSecret, SecretRef: &drillsv1.SecretCredentials{Name: "creds"}}}, "", "", "", 0, `spec.database.auth.secretRef: Secret prod/creds has no key "username"`},
		{"secret missing", drillsv1.DatabaseSpec{Auth: drillsv1.AuthSpec{Mode: drillsv1.AuthSecret, SecretRef: &drillsv1.SecretCredentials{Name: "nope"}}}, "", "", "", 0, "spec.database.auth.secretRef: cannot read Secret prod/nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(secret).Build()
			r := &Reconciler{APIReader: c}
			w := &work{run: newRun("r").Obj(), drill: &drillsv1.RestoreDrill{Spec: drillsv1.RestoreDrillSpec{Database: tt.db}}}
			pod := &corev1.Pod{Status: corev1.PodStatus{PodIP: "127.0.4.7"}}
			cfg, err := r.connConfig(context.Background(), w, pod)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Host != "127.0.4.7" || cfg.Port != tt.wantPort || cfg.Database != tt.wantDB || cfg.User != tt.wantUser || cfg.Password != tt.wantPass {
				t.Errorf("config %s:%d db %q user %q pass %q", cfg.Host, cfg.Port, cfg.Database, cfg.User, cfg.Password)
			}
			if cfg.TLSConfig == nil || len(cfg.Fallbacks) != 1 || cfg.Fallbacks[0].Host != "127.0.4.7" || cfg.Fallbacks[0].TLSConfig != nil {
				t.Errorf("want TLS first, then plain text to the same host; fallbacks %+v", cfg.Fallbacks)
			}
		})
	}
}
