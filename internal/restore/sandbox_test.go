package restore

import (
	"bytes"
	"crypto/tls"
	"encoding/pem"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/builder"
	"github.com/drillerd/drillerd/internal/runcert"
)

// orders starts the drill of the shop's orders database.
func orders() *builder.DrillBuilder {
	return builder.ForDrill("shop", "orders-db").Image("postgres:16").DataSubPath("pgdata").Port(5432).Args("-c", "shared_buffers=64MB")
}

// sandboxFor is the sandbox of run orders-db-1 of drill.
func sandboxFor(drill *drillsv1.RestoreDrill) Sandbox {
	return Sandbox{
		Run:               builder.ForRun("shop", "orders-db-1").Of(drill.Name).Obj(),
		Drill:             drill,
		DrillerdNamespace: "drillerd-system",
		DrillerdLabels:    map[string]string{"app.kubernetes.io/name": "drillerd"},
	}
}

func TestNetworkPolicyAdmitsOnlyDrillerd(t *testing.T) {
	np := sandboxFor(orders().Obj()).NetworkPolicy()
	if len(np.Spec.PodSelector.MatchLabels)+len(np.Spec.PodSelector.MatchExpressions) != 0 {
		t.Error("the policy does not select every pod of the sandbox")
	}
	if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) || len(np.Spec.Egress) != 0 {
		t.Error("egress is not denied: the restored copy could reach production")
	}
	if len(np.Spec.Ingress) != 1 || len(np.Spec.Ingress[0].From) != 1 {
		t.Fatalf("ingress %+v, want one rule from drillerd", np.Spec.Ingress)
	}
	from := np.Spec.Ingress[0].From[0]
	if from.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "drillerd-system" || from.PodSelector.MatchLabels["app.kubernetes.io/name"] != "drillerd" {
		t.Errorf("ingress admits %+v, want drillerd's pods in drillerd-system only", from)
	}
}

func TestContentCopyKeepsThePhysicalSnapshot(t *testing.T) {
	sb := sandboxFor(orders().Obj())
	source := builder.ForContent("snapcontent-prod").Driver("ebs.csi.aws.com").DeletionPolicy(snapshotv1.VolumeSnapshotContentDelete).Obj()
	source.Spec.VolumeSnapshotClassName = ptr.To("csi-aws")
	c := sb.ContentCopy(source, "snap-0abc")
	if c.Spec.DeletionPolicy != snapshotv1.VolumeSnapshotContentRetain {
		t.Errorf("copy has deletionPolicy %s: deleting it would destroy the production backup", c.Spec.DeletionPolicy)
	}
	if ptr.Deref(c.Spec.Source.SnapshotHandle, "") != "snap-0abc" || c.Spec.Source.VolumeHandle != nil || c.Spec.Driver != "ebs.csi.aws.com" ||
		ptr.Deref(c.Spec.VolumeSnapshotClassName, "") != "csi-aws" {
		t.Errorf("copy source %+v driver %s class %v", c.Spec.Source, c.Spec.Driver, c.Spec.VolumeSnapshotClassName)
	}
	if c.Spec.VolumeSnapshotRef.Namespace != sb.NamespaceName() || c.Spec.VolumeSnapshotRef.Name != SourceSnapshotName {
		t.Errorf("copy is bound to %+v", c.Spec.VolumeSnapshotRef)
	}
	if !IsOwnedContent(c) {
		t.Error("drillerd would not be allowed to delete its own copy")
	}
	source.Labels = c.Labels
	if IsOwnedContent(source) {
		t.Error("a Delete-policy content passes the deletion gate")
	}
}

func TestClaimSize(t *testing.T) {
	sb := sandboxFor(orders().Obj())
	tests := []struct {
		name, request, capacity, restore, want string
	}{
		{"restore size larger than the request", "10Gi", "", "20Gi", "20Gi"},
		{"request larger than the restore size", "50Gi", "", "20Gi", "50Gi"},
		{"capacity grown past the request", "10Gi", "30Gi", "20Gi", "30Gi"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := builder.ForClaim("shop", "data-orders-0").StorageClass("fast").Size(tt.request).Obj()
			if tt.capacity != "" {
				src.Status.Capacity = corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(tt.capacity)}
			}
			restore := resource.MustParse(tt.restore)
			claim := sb.Claim(src, &restore)
			got := claim.Spec.Resources.Requests[corev1.ResourceStorage]
			if got.Cmp(resource.MustParse(tt.want)) != 0 || ptr.Deref(claim.Spec.StorageClassName, "") != "fast" {
				t.Errorf("claim size %s class %v, want %s on fast", got.String(), claim.Spec.StorageClassName, tt.want)
			}
		})
	}
}

func TestDatabasePod(t *testing.T) {
	// A drill's args try to switch the protections back on.
	sb := sandboxFor(orders().AuthUser("postgres").
		Args("-c", "archive_mode=on", "-c", "hba_file=/tmp/other", "-c", "max_logical_replication_workers=4",
			"-c", "restore_command=cp /archive/%f %p", "-c", "zero_damaged_pages=on", "-c", "ignore_checksum_failure=on",
			"-c", "cron.launch_active_jobs=on", "-c", "ssl=off", "-c", "ssl_key_file=/tmp/key", "-c", "ident_file=/tmp/ident").Obj())
	trust := sb.DatabasePod()
	c := trust.Spec.Containers[0]
	args := strings.Join(c.Args, " ")
	for _, want := range []string{"-c shared_buffers=64MB", "-c listen_addresses=*"} {
		if !strings.Contains(args, want) {
			t.Errorf("args %q lack %q", args, want)
		}
	}
	// PostgreSQL takes a setting's last value.
	for setting, want := range map[string]string{
		"archive_mode": "off", "hba_file": "/etc/drillerd/hba/pg_hba.conf", "ident_file": "/etc/drillerd/hba/pg_ident.conf",
		"max_logical_replication_workers": "0",
		"ssl":                             "on", "ssl_cert_file": "/etc/drillerd/tls/tls.crt", "ssl_key_file": "/etc/drillerd/tls/tls.key", "ssl_ca_file": "/etc/drillerd/tls/ca.crt",
		"ssl_crl_file": "", "ssl_dh_params_file": "",
		"primary_conninfo": "", "primary_slot_name": "",
		"restore_command": "", "archive_cleanup_command": "", "recovery_end_command": "", "cron.launch_active_jobs": "off",
		"zero_damaged_pages": "off", "ignore_checksum_failure": "off",
	} {
		if got, ok := lastSetting(c.Args, setting); !ok || got != want {
			t.Errorf("%s = %q (set %v), want %q to win over the drill's args", setting, got, ok, want)
		}
	}
	if c.TerminationMessagePolicy != corev1.TerminationMessageFallbackToLogsOnError {
		t.Errorf("termination message policy %q: a database that does not start must say why", c.TerminationMessagePolicy)
	}
	if ns := sb.Namespace(); ns.Labels["pod-security.kubernetes.io/enforce"] != "baseline" {
		t.Errorf("sandbox namespace labels %v: want the baseline Pod Security Standard enforced", ns.Labels)
	}
	if c.Env[0].Name != "PGDATA" || c.Env[0].Value != "/var/lib/postgresql/data/pgdata" {
		t.Errorf("PGDATA %+v", c.Env)
	}
	if ptr.Deref(trust.Spec.AutomountServiceAccountToken, true) || trust.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Error("the sandbox pod must not get an API token and must not hide crashes behind restarts")
	}
	secretMode := sandboxFor(orders().AuthSecret("orders-db-creds", "username", "password").Obj())
	for setting, want := range map[string]string{"hba_file": "/etc/drillerd/hba/pg_hba.conf", "ssl": "on"} {
		if got, _ := lastSetting(secretMode.DatabasePod().Spec.Containers[0].Args, setting); got != want {
			t.Errorf("mode Secret: %s %q, want %q", setting, got, want)
		}
	}

	// The run's TLS files: the Secret's, mode 0640, readable through the
	// pod's fsGroup, next to the ConfigMap's files rather than inside
	// their (read-only) mount.
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m
	}
	if m := mounts["tls"]; m.MountPath != "/etc/drillerd/tls" || !m.ReadOnly {
		t.Errorf("tls mount %+v, want /etc/drillerd/tls read-only", m)
	}
	if m := mounts["hba"]; m.MountPath != "/etc/drillerd/hba" || !m.ReadOnly {
		t.Errorf("hba mount %+v, want /etc/drillerd/hba read-only", m)
	}
	var tlsVolume *corev1.SecretVolumeSource
	for _, v := range trust.Spec.Volumes {
		if v.Name == "tls" {
			tlsVolume = v.Secret
		}
	}
	if tlsVolume == nil || tlsVolume.SecretName != TLSSecretName || ptr.Deref(tlsVolume.DefaultMode, 0o644) != 0o640 || len(tlsVolume.Items) != 0 {
		t.Errorf("tls volume %+v, want Secret %s with defaultMode 0640", tlsVolume, TLSSecretName)
	}
	if sc := trust.Spec.SecurityContext; sc == nil || ptr.Deref(sc.FSGroup, 0) != DatabaseGroup ||
		ptr.Deref(sc.FSGroupChangePolicy, "") != corev1.FSGroupChangeOnRootMismatch {
		t.Errorf("pod security context %+v, want fsGroup %d with OnRootMismatch", sc, DatabaseGroup)
	}
}

// testAccess is an Access of the run of sandboxFor.
func testAccess(t *testing.T, sb Sandbox) Access {
	t.Helper()
	now := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	certs, err := runcert.Issue(sb.CertificateRequest(now, now.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	return Access{Certificates: certs, CheckRole: "drillerd_checks_5e1f0a2b"}
}

func TestPgHbaAndIdentAdmitOnlyWhatTheModeAllows(t *testing.T) {
	tests := []struct {
		name  string
		drill *drillsv1.RestoreDrill
		hba   []string
		ident []string // the roles the client certificate may log in as
	}{
		{"Trust: the run's client certificate, as the drill's user or the check role",
			orders().AuthUser(`shop "owner"`).Obj(),
			[]string{"local all all trust", "hostssl all all all cert map=drillerd", "host all all all reject"},
			[]string{`"shop ""owner"""`, `"drillerd_checks_5e1f0a2b"`}},
		{"Trust without a user: postgres",
			orders().Obj(),
			[]string{"local all all trust", "hostssl all all all cert map=drillerd", "host all all all reject"},
			[]string{`"postgres"`, `"drillerd_checks_5e1f0a2b"`}},
		{"Secret: a password for every role over TLS, the read-only check role included",
			orders().AuthSecret("creds", "username", "password").Obj(),
			[]string{"local all all trust", "hostssl all all all md5", "host all all all reject"},
			nil},
	}
	rulesOf := func(file string) []string {
		var rules []string
		for _, l := range strings.Split(file, "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				rules = append(rules, l)
			}
		}
		return rules
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sb := sandboxFor(tt.drill)
			cm := sb.HBAConfigMap(testAccess(t, sb))
			if got := rulesOf(cm.Data["pg_hba.conf"]); !slices.Equal(got, tt.hba) {
				t.Errorf("pg_hba.conf rules %q, want %q", got, tt.hba)
			}
			var want []string
			for _, role := range tt.ident {
				want = append(want, `drillerd "drillerd-run-`+string(sb.Run.UID)+`" `+role)
			}
			if got := rulesOf(cm.Data["pg_ident.conf"]); !slices.Equal(got, want) {
				t.Errorf("pg_ident.conf %q, want %q", got, want)
			}
		})
	}
}

func TestTLSSecretHoldsTheServersHalfOnly(t *testing.T) {
	sb := sandboxFor(orders().Obj())
	a := testAccess(t, sb)
	s := sb.TLSSecret(a)
	if s.Namespace != sb.NamespaceName() || s.Name != TLSSecretName || s.Type != corev1.SecretTypeTLS || !ptr.Deref(s.Immutable, false) {
		t.Errorf("Secret %s/%s type %s immutable %v, want an immutable %s in the sandbox", s.Namespace, s.Name, s.Type, s.Immutable, corev1.SecretTypeTLS)
	}
	if s.Labels[LabelRun] != string(sb.Run.UID) || s.Labels[LabelManagedBy] != ManagedByValue {
		t.Errorf("labels %v, want the run's ownership labels", s.Labels)
	}
	want := map[string][]byte{"tls.crt": a.Certificates.ServerCert, "tls.key": a.Certificates.ServerKey, "ca.crt": a.Certificates.CACert}
	if len(s.Data) != len(want) {
		t.Errorf("keys %v, want exactly tls.crt, tls.key and ca.crt", slices.Collect(maps.Keys(s.Data)))
	}
	for k, v := range want {
		if !bytes.Equal(s.Data[k], v) {
			t.Errorf("%s is not the run's", k)
		}
	}
	// The client's key is not among them: the only private key there is
	// the server certificate's.
	for k, v := range s.Data {
		for rest := v; ; {
			var block *pem.Block
			if block, rest = pem.Decode(rest); block == nil {
				break
			}
			if strings.Contains(block.Type, "PRIVATE KEY") && k != "tls.key" {
				t.Errorf("%s holds a private key", k)
			}
		}
	}
	key, err := tls.X509KeyPair(s.Data["tls.crt"], s.Data["tls.key"])
	if err != nil {
		t.Fatalf("tls.key is not tls.crt's key: %v", err)
	}
	if key.Leaf.Subject.CommonName != "db."+sb.NamespaceName() {
		t.Errorf("server certificate for %q, want db.%s", key.Leaf.Subject.CommonName, sb.NamespaceName())
	}
}

func TestCertificatesOutliveTheRunBriefly(t *testing.T) {
	sb := sandboxFor(orders().Obj())
	now := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	req := sb.CertificateRequest(now, now.Add(time.Hour))
	if !req.NotBefore.Equal(now.Add(-5*time.Minute)) || !req.NotAfter.Equal(now.Add(65*time.Minute)) {
		t.Errorf("valid %s to %s, want from 5 minutes before now to 5 minutes after the deadline", req.NotBefore, req.NotAfter)
	}
	if req.Client != "drillerd-run-"+string(sb.Run.UID) || req.Server != "db."+sb.NamespaceName() {
		t.Errorf("names %+v", req)
	}
}

func TestNamespaceNameIsAValidLabel(t *testing.T) {
	label := regexp.MustCompile(`^drill-[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	for _, drill := range []string{
		"orders-db",
		strings.Repeat("very-long-drill-name-", 5),
		"db.orders.v2", // a DNS subdomain: dots are not allowed in namespaces
		strings.Repeat("a", 43) + "-" + "bbbbbbb", // truncation would end on a dash
	} {
		name := NamespaceName(drill, "0b8c1a5e-uid")
		if len(name) > 63 || !label.MatchString(name) {
			t.Errorf("NamespaceName(%q) = %q (%d chars): not a valid namespace name", drill, name, len(name))
		}
		if name != NamespaceName(drill, "0b8c1a5e-uid") || name == NamespaceName(drill, "another-uid") {
			t.Errorf("NamespaceName(%q) must be deterministic per run and differ between runs", drill)
		}
	}
}

// lastSetting is the last value given to setting with -c in args.
func lastSetting(args []string, setting string) (string, bool) {
	value, found := "", false
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "-c" {
			if v, ok := strings.CutPrefix(args[i+1], setting+"="); ok {
				value, found = v, true
			}
		}
	}
	return value, found
}

func TestClip(t *testing.T) {
	tests := []struct {
		name  string
		given string
		n     int
		want  string
	}{
		{"shorter than n", "orders", 63, "orders"},
		{"exactly n", "orders", 6, "orders"},
		{"longer than n, no ellipsis", "orders-db", 6, "orders"},
		{"n of zero", "orders", 0, ""},
		{"a two-byte rune across the cut", "ab\u00e9cd", 3, "ab"},
		{"a three-byte rune across the cut", "ab\u20accd", 4, "ab"},
		{"a rune ending at the cut", "ab\u20accd", 5, "ab\u20ac"},
		{"a four-byte rune across the cut", "a\U0001f600b", 4, "a"},
		{"invalid bytes count one each", "a\xff\xffb", 2, "a\xff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := clip(tt.given, tt.n)
			if got != tt.want || len(got) > tt.n {
				t.Errorf("clip(%q, %d) = %q, want %q", tt.given, tt.n, got, tt.want)
			}
		})
	}
}

// TestExtraLabelsOnEverySandboxObject: a cluster's own labels
// (--sandbox-labels) are on every object drillerd creates for a sandbox,
// and drillerd's ownership labels are never overridden by them.
func TestExtraLabelsOnEverySandboxObject(t *testing.T) {
	sb := sandboxFor(orders().Obj())
	sb.ExtraLabels = map[string]string{"team": "dba", "policy.example.com/exempt": "restore-drills"}
	a := testAccess(t, sb)
	source := builder.ForContent("snapcontent-prod").Driver("ebs.csi.aws.com").Obj()
	claim := &corev1.PersistentVolumeClaim{Spec: corev1.PersistentVolumeClaimSpec{
		AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
		Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("10Gi")}},
	}}
	objects := map[string]map[string]string{
		"Namespace":             sb.Namespace().Labels,
		"NetworkPolicy":         sb.NetworkPolicy().Labels,
		"VolumeSnapshotContent": sb.ContentCopy(source, "snap-0123").Labels,
		"VolumeSnapshot":        sb.SnapshotCopy().Labels,
		"PersistentVolumeClaim": sb.Claim(claim, nil).Labels,
		"Pod":                   sb.DatabasePod().Labels,
		"Secret":                sb.TLSSecret(a).Labels,
		"ConfigMap":             sb.HBAConfigMap(a).Labels,
		"PersistentVolume":      sb.Labels(), // what drillerd adds to the restored volume
	}
	for kind, labels := range objects {
		for k, v := range sb.ExtraLabels {
			if labels[k] != v {
				t.Errorf("%s: label %s=%q, want %q", kind, k, labels[k], v)
			}
		}
		if labels[LabelRun] != string(sb.Run.UID) || labels[LabelManagedBy] != ManagedByValue {
			t.Errorf("%s: labels %v lack the run's ownership labels", kind, labels)
		}
	}
	if sb.Namespace().Labels["pod-security.kubernetes.io/enforce"] != "baseline" {
		t.Error("the namespace no longer enforces the baseline Pod Security Standard")
	}
	// Were a reserved key to slip past CheckExtraLabels, drillerd's own
	// value still wins.
	sb.ExtraLabels = map[string]string{LabelManagedBy: "someone-else", LabelRun: "another-run"}
	if l := sb.Labels(); l[LabelManagedBy] != ManagedByValue || l[LabelRun] != string(sb.Run.UID) {
		t.Errorf("ownership labels overridden: %v", l)
	}
}

func TestCheckExtraLabels(t *testing.T) {
	for _, tc := range []struct {
		labels map[string]string
		want   string
	}{
		{map[string]string{"team": "dba", "example.com/cost-center": "42"}, ""},
		{map[string]string{"drills.drillerd.dev/drill": "x"}, "drills.drillerd.dev/drill"},
		{map[string]string{"pod-security.kubernetes.io/warn": "restricted"}, "pod-security.kubernetes.io/warn"},
		{map[string]string{"kubernetes.io/metadata.name": "prod"}, "kubernetes.io/metadata.name"},
		{map[string]string{"team": strings.Repeat("x", 64)}, "team"},
		{map[string]string{"-team": "dba"}, "-team"},
	} {
		err := CheckExtraLabels(tc.labels)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("CheckExtraLabels(%v) = %v, want nil", tc.labels, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("CheckExtraLabels(%v) = %v, want an error naming %s", tc.labels, err, tc.want)
		}
	}
}
