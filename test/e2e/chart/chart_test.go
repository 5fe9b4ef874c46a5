// Package chart_test checks charts/drillerd as a user of Helm would: helm
// lint, helm template with the default values and with every value set, bad
// values refused with the field named, the default install identical to
// `kubectl apply -k deploy/` (the chart is generated from deploy/), and every
// rendered object accepted by a real API server (a server-side dry run on the
// local cluster, with the Prometheus Operator's and cert-manager's CRDs).
package chart_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/drillerd/drillerd/test/fixture"
	"github.com/drillerd/drillerd/test/localcluster"
)

var cluster localcluster.Info

func TestMain(m *testing.M) {
	os.Exit(localcluster.TestMain(m, &cluster))
}

// everyFeature is a values file that sets every value of the chart.
const everyFeature = "testdata/every-feature.yaml"

func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: needs Helm built from its module and the local cluster")
	}
}

func TestHelmLint(t *testing.T) {
	skipShort(t)
	chart := repoPath(t, "charts", "drillerd")
	for _, args := range [][]string{
		{"lint", "--strict", chart},
		{"lint", "--strict", chart, "-f", everyFeature},
	} {
		out, err := helm(t, args...)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "1 chart(s) linted, 0 chart(s) failed") {
			t.Errorf("helm %s:\n%s", strings.Join(args, " "), out)
		}
	}
}

// TestDefaultInstallIsDeploy: helm template with the default values makes
// exactly the objects of kubectl apply -k deploy/ (but the namespace, which
// Helm installs into), with Helm's labels added; and with the monitoring
// switched on, those of deploy/ with its monitoring component.
func TestDefaultInstallIsDeploy(t *testing.T) {
	skipShort(t)
	for _, tc := range []struct {
		name          string
		kustomization string
		values        []string
	}{
		{"default values", repoPath(t, "deploy"), nil},
		{"monitoring on", "testdata/deploy-with-monitoring", []string{
			"--set", "monitoring.serviceMonitor.enabled=true",
			"--set", "monitoring.prometheusRule.enabled=true",
			"--set", "monitoring.dashboard.enabled=true",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := exec.Command(cluster.KubectlBinary, "kustomize", tc.kustomization).CombinedOutput()
			if err != nil {
				t.Fatalf("kubectl kustomize %s: %v\n%s", tc.kustomization, err, out)
			}
			deploy, err := parseObjects(string(out))
			if err != nil {
				t.Fatal(err)
			}
			chart := render(t, "drillerd-system", append([]string{"--include-crds"}, tc.values...)...)

			want := map[string]object{}
			for _, obj := range deploy {
				if obj["kind"] == "Namespace" {
					continue
				}
				want[key(obj)] = obj
			}
			got := map[string]object{}
			for _, obj := range chart {
				withoutHelmLabels(t, obj)
				got[key(obj)] = obj
			}
			for k, w := range want {
				g, ok := got[k]
				if !ok {
					t.Errorf("the chart has no %s, which deploy/ installs", k)
					continue
				}
				if !reflect.DeepEqual(g, w) {
					t.Errorf("%s differs from deploy/'s:\n%s", k, firstDifference(g, w))
				}
			}
			for k := range got {
				if _, ok := want[k]; !ok {
					t.Errorf("the chart makes %s, which deploy/ does not install", k)
				}
			}
		})
	}
}

// firstDifference shows where two objects first differ, as indented JSON.
func firstDifference(chart, deploy object) string {
	a, _ := json.MarshalIndent(chart, "", "  ")
	b, _ := json.MarshalIndent(deploy, "", "  ")
	al, bl := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	i := 0
	for i < len(al) && i < len(bl) && al[i] == bl[i] {
		i++
	}
	lines := func(l []string) string {
		from, to := max(0, i-3), min(len(l), i+4)
		out := slices.Clone(l[from:to])
		for j, line := range out {
			if len(line) > 200 {
				out[j] = line[:100] + " … " + line[len(line)-100:]
			}
		}
		return strings.Join(out, "\n")
	}
	return fmt.Sprintf("chart, line %d:\n%s\ndeploy/, line %d:\n%s", i+1, lines(al), i+1, lines(bl))
}

// withoutHelmLabels removes the labels the chart adds to every object (and
// fails if one is missing), leaving deploy/'s own.
func withoutHelmLabels(t *testing.T, obj object) {
	t.Helper()
	if strings.HasSuffix(key(obj), "CustomResourceDefinition") || obj["kind"] == "CustomResourceDefinition" {
		return
	}
	labels, _ := field(obj, "metadata", "labels").(map[string]any)
	for l, want := range map[string]string{
		"helm.sh/chart":                "drillerd-0.1.0",
		"app.kubernetes.io/instance":   "drillerd",
		"app.kubernetes.io/version":    "v0.1.0",
		"app.kubernetes.io/managed-by": "Helm",
	} {
		if labels[l] != want {
			t.Errorf("%s: label %s = %v, want %s", key(obj), l, labels[l], want)
		}
		delete(labels, l)
	}
	if len(labels) == 0 {
		delete(obj["metadata"].(map[string]any), "labels")
	}
}

// TestEveryValue renders the chart with every value set and checks that each
// reaches the object it is for.
func TestEveryValue(t *testing.T) {
	skipShort(t)
	objs := render(t, "platform-drills", "-f", everyFeature)
	d := objs.get(t, "Deployment", "drillerd")
	c := container(t, objs)
	pod := field(d, "spec", "template", "spec")

	checks := []struct {
		what      string
		got, want any
	}{
		{"image", c["image"], "registry.example.com/platform/drillerd:v9.9.9@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
		{"imagePullPolicy", c["imagePullPolicy"], "Always"},
		{"imagePullSecrets", field(pod, "imagePullSecrets", 0, "name"), "registry-credentials"},
		{"replicas", field(d, "spec", "replicas"), float64(3)},
		{"args", stringList(c["args"]), []string{"serve", "--leader-elect", "--api-bind-address=:8443", "--metrics-bind-address=:8080",
			"--health-probe-bind-address=:8081", "--max-concurrent-drills=5", "--api-audiences=drillerd,drillerd.example.com",
			"--tls-min-version=1.3", "--tls-cert-file=/etc/drillerd/tls/tls.crt", "--tls-key-file=/etc/drillerd/tls/tls.key",
			"--starting-deadline=30m", "--sweep-interval=5m", "--log-level=debug",
			"--sandbox-labels=policy.example.com/exempt=restore-drills,team=dba", "--log-format=console"}},
		{"the certificate's mount", field(c, "volumeMounts", 0), map[string]any{"name": "api-tls", "mountPath": "/etc/drillerd/tls", "readOnly": true}},
		{"the certificate's volume", field(pod, "volumes", 0, "secret", "secretName"), "drillerd-serving"},
		{"resources", c["resources"], map[string]any{"requests": map[string]any{"cpu": "100m", "memory": "128Mi"}, "limits": map[string]any{"cpu": "1", "memory": "512Mi"}}},
		{"nodeSelector", field(pod, "nodeSelector", "node-role.example.com/platform"), "true"},
		{"tolerations", field(pod, "tolerations", 0, "value"), "platform"},
		{"affinity", field(pod, "affinity", "podAntiAffinity", "requiredDuringSchedulingIgnoredDuringExecution", 0, "topologyKey"), "kubernetes.io/hostname"},
		{"priorityClassName", field(pod, "priorityClassName"), "system-cluster-critical"},
		{"pod labels", field(d, "spec", "template", "metadata", "labels"), map[string]any{"app.kubernetes.io/name": "drillerd", "team": "platform"}},
		{"pod annotations", field(d, "spec", "template", "metadata", "annotations", "example.com/owner"), "platform"},
		{"namespace", field(d, "metadata", "namespace"), "platform-drills"},
		{"leader election Role's namespace", field(objs.get(t, "Role", "drillerd-leader-election"), "metadata", "namespace"), "platform-drills"},
		{"ClusterRoleBinding's subject", field(objs.get(t, "ClusterRoleBinding", "drillerd"), "subjects", 0, "namespace"), "platform-drills"},
		{"admission policy's user", field(objs.get(t, "ValidatingAdmissionPolicy", "drillerd-sandbox-pods"), "spec", "matchConditions", 0, "expression"),
			"request.userInfo.username == 'system:serviceaccount:platform-drills:drillerd'"},
		{"PodDisruptionBudget", objs.has("PodDisruptionBudget", "drillerd"), true},
		{"NetworkPolicy", objs.has("NetworkPolicy", "drillerd"), true},
		{"Certificate's Secret", field(objs.get(t, "Certificate", "drillerd-api"), "spec", "secretName"), "drillerd-serving"},
		{"Certificate's issuer", field(objs.get(t, "Certificate", "drillerd-api"), "spec", "issuerRef"), map[string]any{"name": "internal-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}},
		{"Certificate's names", stringList(field(objs.get(t, "Certificate", "drillerd-api"), "spec", "dnsNames")),
			[]string{"drillerd", "drillerd.platform-drills", "drillerd.platform-drills.svc", "drillerd.platform-drills.svc.cluster.example"}},
		{"Certificate's lifetime", []any{field(objs.get(t, "Certificate", "drillerd-api"), "spec", "duration"), field(objs.get(t, "Certificate", "drillerd-api"), "spec", "renewBefore")}, []any{"720h", "240h"}},
		{"ServiceMonitor's labels", field(objs.get(t, "ServiceMonitor", "drillerd"), "metadata", "labels", "release"), "kube-prometheus-stack"},
		{"ServiceMonitor's interval", field(objs.get(t, "ServiceMonitor", "drillerd"), "spec", "endpoints", 0, "interval"), "15s"},
		{"PrometheusRule's labels", field(objs.get(t, "PrometheusRule", "drillerd"), "metadata", "labels", "release"), "kube-prometheus-stack"},
		{"dashboard's namespace", field(objs.get(t, "ConfigMap", "drillerd-dashboard"), "metadata", "namespace"), "grafana"},
		{"dashboard's sidecar label", field(objs.get(t, "ConfigMap", "drillerd-dashboard"), "metadata", "labels", "grafana_dashboard"), "1"},
		{"dashboard's labels", field(objs.get(t, "ConfigMap", "drillerd-dashboard"), "metadata", "labels", "team"), "platform"},
		{"dashboard's folder", field(objs.get(t, "ConfigMap", "drillerd-dashboard"), "metadata", "annotations", "grafana_folder"), "Backups"},
	}
	for _, tc := range checks {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s = %#v, want %#v", tc.what, tc.got, tc.want)
		}
	}
	for _, policy := range []string{"drillerd-sandbox-namespaces", "drillerd-sandbox-pods", "drillerd-sandbox-objects", "drillerd-content-copies", "drillerd-restored-volumes"} {
		expr, _ := field(objs.get(t, "ValidatingAdmissionPolicy", policy), "spec", "matchConditions", 0, "expression").(string)
		if !strings.Contains(expr, "system:serviceaccount:platform-drills:drillerd") {
			t.Errorf("ValidatingAdmissionPolicy %s matches %q, not drillerd's ServiceAccount in the release namespace", policy, expr)
		}
	}
}

// TestSwitches: each switch and its default, as a user sees them in what
// the chart makes.
func TestSwitches(t *testing.T) {
	skipShort(t)
	for _, tc := range []struct {
		name    string
		flags   []string
		present []string // kind/name
		absent  []string
		check   func(t *testing.T, objs objects)
	}{
		{
			name:    "defaults",
			present: []string{"Deployment/drillerd", "PodDisruptionBudget/drillerd", "NetworkPolicy/drillerd", "ValidatingAdmissionPolicy/drillerd-sandbox-pods", "ClusterRole/drillerd-view"},
			absent:  []string{"ServiceMonitor/drillerd", "PrometheusRule/drillerd", "ConfigMap/drillerd-dashboard", "Certificate/drillerd-api", "Namespace/drillerd-system"},
			check: func(t *testing.T, objs objects) {
				c := container(t, objs)
				if img := c["image"]; img != "ghcr.io/drillerd/drillerd:v0.1.0" {
					t.Errorf("image = %v, want the appVersion's tag", img)
				}
				if c["volumeMounts"] != nil || slices.ContainsFunc(stringList(c["args"]), func(a string) bool { return strings.HasPrefix(a, "--tls-cert-file") }) {
					t.Errorf("without a certificate drillerd serves a self-signed one: want no mount, no --tls-cert-file; container %v", c)
				}
			},
		},
		{
			name:    "one replica without leader election",
			flags:   []string{"--set", "replicas=1", "--set", "leaderElect=false"},
			present: []string{"Deployment/drillerd"},
			absent:  []string{"PodDisruptionBudget/drillerd"},
			check: func(t *testing.T, objs objects) {
				d := objs.get(t, "Deployment", "drillerd")
				if s := field(d, "spec", "strategy", "type"); s != "Recreate" {
					t.Errorf("strategy %v, want Recreate: a rolling update would run two drillerds without leader election", s)
				}
				if args := stringList(container(t, objs)["args"]); !slices.Contains(args, "--leader-elect=false") {
					t.Errorf("args %v, want --leader-elect=false", args)
				}
			},
		},
		{
			name:    "one replica with leader election",
			flags:   []string{"--set", "replicas=1"},
			absent:  []string{"PodDisruptionBudget/drillerd"},
			present: []string{"Deployment/drillerd"},
			check: func(t *testing.T, objs objects) {
				if s := field(objs.get(t, "Deployment", "drillerd"), "spec", "strategy"); s != nil {
					t.Errorf("strategy %v, want the default rolling update", s)
				}
			},
		},
		{
			name:   "admission policy and network policy off",
			flags:  []string{"--set", "admissionPolicy.enabled=false", "--set", "networkPolicy.enabled=false"},
			absent: []string{"ValidatingAdmissionPolicy/drillerd-sandbox-namespaces", "ValidatingAdmissionPolicyBinding/drillerd-sandbox-namespaces", "ValidatingAdmissionPolicy/drillerd-restored-volumes", "NetworkPolicy/drillerd"},
		},
		{
			name:    "cert-manager with its default Secret",
			flags:   []string{"--set", "api.tls.certManager.enabled=true", "--set", "api.tls.certManager.issuerRef.name=ca"},
			present: []string{"Certificate/drillerd-api"},
			check: func(t *testing.T, objs objects) {
				cert := objs.get(t, "Certificate", "drillerd-api")
				vol := field(objs.get(t, "Deployment", "drillerd"), "spec", "template", "spec", "volumes", 0, "secret", "secretName")
				if field(cert, "spec", "secretName") != "drillerd-api-tls" || vol != "drillerd-api-tls" {
					t.Errorf("Certificate's Secret %v, mounted Secret %v: want both drillerd-api-tls", field(cert, "spec", "secretName"), vol)
				}
				if kind := field(cert, "spec", "issuerRef", "kind"); kind != "Issuer" {
					t.Errorf("issuerRef.kind = %v, want Issuer", kind)
				}
			},
		},
		{
			name:   "an existing Secret without cert-manager",
			flags:  []string{"--set", "api.tls.secretName=my-tls"},
			absent: []string{"Certificate/drillerd-api"},
			check: func(t *testing.T, objs objects) {
				if vol := field(objs.get(t, "Deployment", "drillerd"), "spec", "template", "spec", "volumes", 0, "secret", "secretName"); vol != "my-tls" {
					t.Errorf("mounted Secret %v, want my-tls", vol)
				}
			},
		},
		{
			name:    "only the dashboard",
			flags:   []string{"--set", "monitoring.dashboard.enabled=true"},
			present: []string{"ConfigMap/drillerd-dashboard"},
			absent:  []string{"ServiceMonitor/drillerd", "PrometheusRule/drillerd"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := render(t, "drillerd-system", tc.flags...)
			for _, p := range tc.present {
				kind, name, _ := strings.Cut(p, "/")
				if !objs.has(kind, name) {
					t.Errorf("no %s among %v", p, objs.keys())
				}
			}
			for _, a := range tc.absent {
				kind, name, _ := strings.Cut(a, "/")
				if objs.has(kind, name) {
					t.Errorf("%s is there; want it switched off", a)
				}
			}
			if tc.check != nil {
				tc.check(t, objs)
			}
		})
	}
}

// TestBadValues: helm refuses values that cannot work, naming the value
// and what to do.
func TestBadValues(t *testing.T) {
	skipShort(t)
	for _, tc := range []struct {
		name  string
		flags []string
		want  []string
	}{
		{"two replicas without leader election", []string{"--set", "leaderElect=false"}, []string{"replicas: 2 needs leaderElect: true", "set replicas: 1"}},
		{"no replica", []string{"--set", "replicas=0"}, []string{"replicas", "minimum"}},
		{"a misspelt value", []string{"--set", "replica=3"}, []string{"replica", "additional properties"}},
		{"TLS 1.1", []string{"--set", "api.tlsMinVersion=1.1"}, []string{"tlsMinVersion", "1.2"}},
		{"zero concurrent drills", []string{"--set", "maxConcurrentDrills=0"}, []string{"maxConcurrentDrills", "minimum"}},
		{"a starting deadline without a unit", []string{"--set-string", "startingDeadline=10"}, []string{"/startingDeadline", "does not match pattern"}},
		{"cert-manager without an issuer", []string{"--set", "api.tls.certManager.enabled=true"}, []string{"api.tls.certManager.issuerRef.name", "Issuer or ClusterIssuer"}},
		{"a digest that is not one", []string{"--set", "image.digest=latest"}, []string{"image.digest"}},
		{"a flag without dashes", []string{"--set", "extraArgs={log-level=debug}"}, []string{"extraArgs"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"template", "drillerd", repoPath(t, "charts", "drillerd")}, tc.flags...)
			_, err := helm(t, args...)
			if err == nil {
				t.Fatalf("helm template %v succeeded; want a refusal", tc.flags)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the refusal does not say %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestServerDryRun: the API server accepts every object the chart makes,
// with the default values and with every value set, CRDs included.
func TestServerDryRun(t *testing.T) {
	skipShort(t)
	env := fixture.New(t, cluster)
	for _, resource := range []string{"servicemonitors", "prometheusrules"} {
		crd, err := fixture.PrometheusOperatorCRD(resource)
		if err != nil {
			t.Fatal(err)
		}
		kubectl(t, "", "apply", "--server-side", "-f", crd)
	}
	kubectl(t, "", "apply", "--server-side", "-f", certManagerCRD(t, "certificates"))
	kubectl(t, "", "wait", "--for=condition=Established", "--timeout=30s",
		"crd/servicemonitors.monitoring.coreos.com", "crd/prometheusrules.monitoring.coreos.com", "crd/certificates.cert-manager.io")

	ns := env.Namespace("drillerd-chart")
	for _, tc := range []struct {
		name  string
		flags []string
	}{
		{"default values", nil},
		{"every value", []string{"-f", everyFeature, "--set", "monitoring.dashboard.namespace=" + ns}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := renderText(t, ns, append([]string{"--include-crds"}, tc.flags...)...)
			objs, err := parseObjects(text)
			if err != nil {
				t.Fatal(err)
			}
			out := kubectl(t, text, "apply", "--server-side", "--force-conflicts", "--field-manager=helm", "--dry-run=server", "-f", "-")
			for _, obj := range objs {
				name := field(obj, "metadata", "name")
				if !strings.Contains(out, "/"+name.(string)+" serverside-applied (server dry run)") {
					t.Errorf("the server dry run does not accept %s:\n%s", key(obj), out)
				}
			}
		})
	}
}

func kubectl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(cluster.KubectlBinary, append([]string{"--kubeconfig", cluster.Kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// certManagerCRD is the file of cert-manager's CRD for resource in the
// cert-manager module test/tools/cert-manager pins.
func certManagerCRD(t *testing.T, resource string) string {
	t.Helper()
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/cert-manager/cert-manager")
	cmd.Dir = repoPath(t, "test", "tools", "cert-manager")
	out, err := cmd.Output()
	dir := strings.TrimSpace(string(out))
	if err != nil || dir == "" {
		t.Fatalf("the cert-manager module is not downloaded (make deps): %v", err)
	}
	return dir + "/deploy/crds/cert-manager.io_" + resource + ".yaml"
}
