package drill_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	snapshotclient "github.com/kubernetes-csi/external-snapshotter/client/v8/clientset/versioned"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/restore"
	"github.com/drillerd/drillerd/internal/runcert"
	"github.com/drillerd/drillerd/test/fixture"
)

// The ValidatingAdmissionPolicies of deploy/install/admission-policy.yaml.
const (
	policyNamespaces = "drillerd-sandbox-namespaces"
	policyPods       = "drillerd-sandbox-pods"
	policyObjects    = "drillerd-sandbox-objects"
	policySecrets    = "drillerd-sandbox-secrets"
	policyContents   = "drillerd-content-copies"
	policyVolumes    = "drillerd-restored-volumes"
)

// unservedDriver is a CSI driver nothing serves: a content of it is left
// alone by the node emulator, and deleting it touches no physical snapshot.
const unservedDriver = "unserved.csi.drillerd.dev"

// refusal is one request by drillerd's ServiceAccount that the API server
// must refuse: the policy that refuses it and the rule its message names.
type refusal struct {
	name   string
	policy string
	rule   string
	// do sends the request with dryRun (nil for a real request).
	do func(ctx context.Context, dryRun []string) error
}

// refusedBy reports whether err is policy's refusal naming rule.
func refusedBy(err error, policy, rule string) bool {
	return apierrors.IsForbidden(err) &&
		strings.Contains(err.Error(), "ValidatingAdmissionPolicy '"+policy+"'") &&
		strings.Contains(err.Error(), "denied request: "+rule+":")
}

// serviceAccountClients are clients authenticated with drillerd's
// ServiceAccount token.
type serviceAccountClients struct {
	token     string
	core      kubernetes.Interface
	snapshots snapshotclient.Interface
}

func newServiceAccountClients(t *testing.T, env *fixture.Env) *serviceAccountClients {
	t.Helper()
	tr, err := env.Client.CoreV1().ServiceAccounts("drillerd-system").CreateToken(env.Ctx, "drillerd",
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(3600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := rest.AnonymousClientConfig(env.Config)
	cfg.BearerToken = tr.Status.Token
	return &serviceAccountClients{
		token:     tr.Status.Token,
		core:      kubernetes.NewForConfigOrDie(cfg),
		snapshots: snapshotclient.NewForConfigOrDie(cfg),
	}
}

// TestAdmissionPolicy installs deploy/ and proves, with the real
// kube-apiserver, that its ValidatingAdmissionPolicies fence drillerd's
// ServiceAccount: every request outside drillerd's sandboxes is refused
// with a message naming the rule, the requests drillerd makes for a
// sandbox are admitted, and a whole drill as the ServiceAccount, with a
// Secret read through the opt-in RoleBinding, passes and is refused
// nothing.
func TestAdmissionPolicy(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: needs the local cluster")
	}
	env := fixture.New(t, cluster)
	p := setUpProduction(t, env)
	installDeploy(t, env)
	waitPoliciesTypeChecked(t, env)
	sa := newServiceAccountClients(t, env)

	// What drillerd would create for a run of a drill of the production
	// database, built by its own code.
	sandbox := restore.Sandbox{
		Run:               &drillsv1.DrillRun{ObjectMeta: metav1.ObjectMeta{Namespace: p.ns, Name: "admission-1", UID: uuid.NewUUID()}},
		Drill:             p.newDrill("admission").d,
		DrillerdNamespace: "drillerd-system",
		DrillerdLabels:    map[string]string{"app.kubernetes.io/name": "drillerd"},
	}
	sandboxNS := sandbox.NamespaceName()
	t.Cleanup(func() { env.DeleteNamespace(context.Background(), sandboxNS) })
	certs, err := runcert.Issue(sandbox.CertificateRequest(time.Now(), time.Now().Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	access := restore.Access{Certificates: certs, CheckRole: "drillerd_checks_0a0b0c0d"}
	nightly, err := env.Snapshots.SnapshotV1().VolumeSnapshots(p.ns).Get(env.Ctx, "nightly", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	productionContent := env.Content(nightly)
	claim, err := env.Client.CoreV1().PersistentVolumeClaims(p.ns).Get(env.Ctx, p.pg.ClaimName(), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	productionVolume, err := env.Client.CoreV1().PersistentVolumes().Get(env.Ctx, claim.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// Made by an administrator: namespaces drillerd must not delete or
	// create pods in, a labelled content with deletionPolicy Delete, a
	// sandbox namespace where Pod Security admits anything (as where it is
	// off or exempts the namespace), and a volume bound to a sandbox's
	// claim.
	suffix := string(sandbox.Run.UID)[:8]
	labelled := map[string]string{restore.LabelManagedBy: restore.ManagedByValue, restore.LabelRun: string(uuid.NewUUID())}
	lookalikeNS := adminNamespace(t, env, "admission-labelled-"+suffix, labelled)
	unlabelledNS := adminNamespace(t, env, "drill-unlabelled-"+suffix, nil)
	privilegedNS := adminNamespace(t, env, "drill-privileged-"+suffix, merge(labelled, map[string]string{"pod-security.kubernetes.io/enforce": "privileged"}))
	deleteContent := adminContent(t, env, &snapshotv1.VolumeSnapshotContent{
		ObjectMeta: metav1.ObjectMeta{Name: "drill-delete-" + suffix, Labels: labelled},
		Spec: snapshotv1.VolumeSnapshotContentSpec{
			Driver:            unservedDriver,
			DeletionPolicy:    snapshotv1.VolumeSnapshotContentDelete,
			Source:            snapshotv1.VolumeSnapshotContentSource{SnapshotHandle: ptr.To("admission-no-such-snapshot")},
			VolumeSnapshotRef: corev1.ObjectReference{Namespace: sandboxNS, Name: restore.SourceSnapshotName},
		},
	})
	restoredVolume := adminVolume(t, env, "admission-restored-"+suffix, sandboxNS)

	// Sandbox objects as drillerd builds them, moved or changed one
	// field at a time.
	podIn := func(ns string, change func(*corev1.Pod)) func(context.Context, []string) error {
		return func(ctx context.Context, dryRun []string) error {
			pod := sandbox.DatabasePod()
			pod.Namespace = ns
			if change != nil {
				change(pod)
			}
			_, err := sa.core.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{DryRun: dryRun})
			return err
		}
	}
	secretIn := func(ns string, change func(*corev1.Secret)) func(context.Context, []string) error {
		return func(ctx context.Context, dryRun []string) error {
			secret := sandbox.TLSSecret(access)
			secret.Namespace = ns
			if change != nil {
				change(secret)
			}
			_, err := sa.core.CoreV1().Secrets(ns).Create(ctx, secret, metav1.CreateOptions{DryRun: dryRun})
			return err
		}
	}
	database := func(change func(*corev1.Container)) func(*corev1.Pod) {
		return func(pod *corev1.Pod) { change(&pod.Spec.Containers[0]) }
	}
	withSecurity := func(sc corev1.SecurityContext) func(*corev1.Container) {
		return func(c *corev1.Container) { c.SecurityContext = &sc }
	}
	contentCopy := func(change func(*snapshotv1.VolumeSnapshotContent)) func(context.Context, []string) error {
		return func(ctx context.Context, dryRun []string) error {
			c := sandbox.ContentCopy(productionContent, "admission-no-such-snapshot")
			c.Name, c.Spec.Driver = "drill-refused-"+suffix, unservedDriver
			change(c)
			_, err := sa.snapshots.SnapshotV1().VolumeSnapshotContents().Create(ctx, c, metav1.CreateOptions{DryRun: dryRun})
			if err == nil && dryRun == nil {
				t.Cleanup(func() {
					_ = env.Snapshots.SnapshotV1().VolumeSnapshotContents().Delete(context.Background(), c.Name, metav1.DeleteOptions{})
				})
			}
			return err
		}
	}
	namespace := func(name string, change func(*corev1.Namespace)) func(context.Context, []string) error {
		return func(ctx context.Context, dryRun []string) error {
			ns := sandbox.Namespace()
			ns.Name = name
			change(ns)
			_, err := sa.core.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{DryRun: dryRun})
			if err == nil && dryRun == nil {
				t.Cleanup(func() { env.DeleteNamespace(context.Background(), name) })
			}
			return err
		}
	}
	deleteNamespace := func(name string) func(context.Context, []string) error {
		return func(ctx context.Context, dryRun []string) error {
			return sa.core.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{DryRun: dryRun})
		}
	}
	deleteContentNamed := func(name string) func(context.Context, []string) error {
		return func(ctx context.Context, dryRun []string) error {
			return sa.snapshots.SnapshotV1().VolumeSnapshotContents().Delete(ctx, name, metav1.DeleteOptions{DryRun: dryRun})
		}
	}
	patchVolume := func(name string, patch map[string]any) func(context.Context, []string) error {
		return func(ctx context.Context, dryRun []string) error {
			data, err := json.Marshal(patch)
			if err != nil {
				return err
			}
			_, err = sa.core.CoreV1().PersistentVolumes().Patch(ctx, name, types.MergePatchType, data, metav1.PatchOptions{DryRun: dryRun})
			return err
		}
	}
	otherPolicy := corev1.PersistentVolumeReclaimRetain
	if productionVolume.Spec.PersistentVolumeReclaimPolicy == corev1.PersistentVolumeReclaimRetain {
		otherPolicy = corev1.PersistentVolumeReclaimDelete
	}

	// The first refusal of each policy is also its readiness probe: it
	// runs as a dry run until the API server enforces the policy.
	refusals := []refusal{
		{"a namespace without the drill- prefix", policyNamespaces, "namespace-name",
			namespace("admission-"+suffix, func(*corev1.Namespace) {})},
		{"a drill- namespace without drillerd's labels", policyNamespaces, "namespace-ownership",
			namespace("drill-admission-"+suffix, func(ns *corev1.Namespace) {
				ns.Labels = map[string]string{"pod-security.kubernetes.io/enforce": "baseline"}
			})},
		{"a drill- namespace without a run label", policyNamespaces, "namespace-ownership",
			namespace("drill-admission-"+suffix, func(ns *corev1.Namespace) { delete(ns.Labels, restore.LabelRun) })},
		{"a sandbox namespace enforcing Pod Security privileged", policyNamespaces, "namespace-pod-security",
			namespace("drill-admission-"+suffix, func(ns *corev1.Namespace) { ns.Labels["pod-security.kubernetes.io/enforce"] = "privileged" })},
		{"a sandbox namespace without Pod Security", policyNamespaces, "namespace-pod-security",
			namespace("drill-admission-"+suffix, func(ns *corev1.Namespace) { delete(ns.Labels, "pod-security.kubernetes.io/enforce") })},
		{"a sandbox namespace with another Pod Security label", policyNamespaces, "namespace-pod-security",
			namespace("drill-admission-"+suffix, func(ns *corev1.Namespace) { ns.Labels["pod-security.kubernetes.io/enforce-version"] = "v1.0" })},
		{"deleting a labelled namespace without the prefix", policyNamespaces, "namespace-name", deleteNamespace(lookalikeNS)},
		{"deleting a drill- namespace without drillerd's labels", policyNamespaces, "namespace-ownership", deleteNamespace(unlabelledNS)},
		{"deleting the production namespace", policyNamespaces, "namespace-name", deleteNamespace(p.ns)},

		{"a database pod in the production namespace", policyPods, "pod-namespace", podIn(p.ns, nil)},
		{"a database pod in a drill- namespace without drillerd's labels", policyPods, "pod-namespace", podIn(unlabelledNS, nil)},
		{"a privileged pod", policyPods, "pod-privileged", podIn(privilegedNS, database(withSecurity(corev1.SecurityContext{Privileged: ptr.To(true)})))},
		{"a privileged init container", policyPods, "pod-privileged", podIn(privilegedNS, func(pod *corev1.Pod) {
			init := pod.Spec.Containers[0]
			init.Name, init.Ports, init.ReadinessProbe = "init", nil, nil
			init.SecurityContext = &corev1.SecurityContext{Privileged: ptr.To(true)}
			pod.Spec.InitContainers = []corev1.Container{init}
		})},
		{"a pod mounting a hostPath", policyPods, "pod-host-path", podIn(privilegedNS, func(pod *corev1.Pod) {
			pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}})
		})},
		{"a pod on the host's network", policyPods, "pod-host-namespaces", podIn(privilegedNS, func(pod *corev1.Pod) { pod.Spec.HostNetwork = true })},
		{"a pod in the host's PID namespace", policyPods, "pod-host-namespaces", podIn(privilegedNS, func(pod *corev1.Pod) { pod.Spec.HostPID = true })},
		{"a pod in the host's IPC namespace", policyPods, "pod-host-namespaces", podIn(privilegedNS, func(pod *corev1.Pod) { pod.Spec.HostIPC = true })},
		{"a pod allowing privilege escalation", policyPods, "pod-privilege-escalation",
			podIn(privilegedNS, database(withSecurity(corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(true)})))},
		{"a pod adding a capability", policyPods, "pod-capabilities",
			podIn(privilegedNS, database(withSecurity(corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"SYS_ADMIN"}}})))},
		{"a pod with a hostPort", policyPods, "pod-host-port", podIn(privilegedNS, database(func(c *corev1.Container) { c.Ports[0].HostPort = c.Ports[0].ContainerPort }))},
		{"a pod mounting a ServiceAccount token", policyPods, "pod-service-account-token",
			podIn(privilegedNS, func(pod *corev1.Pod) { pod.Spec.AutomountServiceAccountToken = nil })},

		{"a deny-all NetworkPolicy in the production namespace", policyObjects, "sandbox-object-namespace", func(ctx context.Context, dryRun []string) error {
			np := sandbox.NetworkPolicy()
			np.Namespace = p.ns
			_, err := sa.core.NetworkingV1().NetworkPolicies(p.ns).Create(ctx, np, metav1.CreateOptions{DryRun: dryRun})
			return err
		}},
		{"a restored claim in the production namespace", policyObjects, "sandbox-object-namespace", func(ctx context.Context, dryRun []string) error {
			c := sandbox.Claim(claim, nil)
			c.Namespace = p.ns
			_, err := sa.core.CoreV1().PersistentVolumeClaims(p.ns).Create(ctx, c, metav1.CreateOptions{DryRun: dryRun})
			return err
		}},
		{"a VolumeSnapshot in the production namespace", policyObjects, "sandbox-object-namespace", func(ctx context.Context, dryRun []string) error {
			s := sandbox.SnapshotCopy()
			s.Namespace = p.ns
			_, err := sa.snapshots.SnapshotV1().VolumeSnapshots(p.ns).Create(ctx, s, metav1.CreateOptions{DryRun: dryRun})
			return err
		}},
		{"a ConfigMap in the production namespace", policyObjects, "sandbox-object-namespace", func(ctx context.Context, dryRun []string) error {
			cm := sandbox.HBAConfigMap(access)
			cm.Namespace = p.ns
			_, err := sa.core.CoreV1().ConfigMaps(p.ns).Create(ctx, cm, metav1.CreateOptions{DryRun: dryRun})
			return err
		}},

		{"the TLS Secret in the production namespace", policySecrets, "secret-namespace", secretIn(p.ns, nil)},
		{"the TLS Secret in a drill- namespace without drillerd's labels", policySecrets, "secret-namespace", secretIn(unlabelledNS, nil)},
		{"a ServiceAccount token Secret in a sandbox", policySecrets, "secret-shape", secretIn(privilegedNS, func(s *corev1.Secret) {
			s.Name, s.Type, s.Data = "drillerd-token", corev1.SecretTypeServiceAccountToken, nil
			s.Annotations = map[string]string{corev1.ServiceAccountNameKey: "default"}
		})},
		{"a TLS Secret of another name", policySecrets, "secret-shape", secretIn(privilegedNS, func(s *corev1.Secret) { s.Name = "db-credentials" })},
		{"a TLS Secret with another key", policySecrets, "secret-shape", secretIn(privilegedNS, func(s *corev1.Secret) { s.Data["password"] = []byte("x") })},
		{"a TLS Secret that can be changed", policySecrets, "secret-shape", secretIn(privilegedNS, func(s *corev1.Secret) { s.Immutable = nil })},
		{"a TLS Secret without drillerd's labels", policySecrets, "secret-ownership", secretIn(privilegedNS, func(s *corev1.Secret) { s.Labels = nil })},

		{"a content copy with deletionPolicy Delete", policyContents, "content-retain", contentCopy(func(c *snapshotv1.VolumeSnapshotContent) {
			c.Spec.DeletionPolicy = snapshotv1.VolumeSnapshotContentDelete
		})},
		{"a content copy without drillerd's labels", policyContents, "content-ownership", contentCopy(func(c *snapshotv1.VolumeSnapshotContent) { c.Labels = nil })},
		{"a content that cuts a new snapshot of a volume", policyContents, "content-copy", contentCopy(func(c *snapshotv1.VolumeSnapshotContent) {
			c.Spec.Source = snapshotv1.VolumeSnapshotContentSource{VolumeHandle: ptr.To("admission-no-such-volume")}
		})},
		{"a content copy for a VolumeSnapshot in the production namespace", policyContents, "content-copy", contentCopy(func(c *snapshotv1.VolumeSnapshotContent) {
			c.Spec.VolumeSnapshotRef.Namespace = p.ns
		})},
		{"deleting a labelled content with deletionPolicy Delete", policyContents, "content-retain", deleteContentNamed(deleteContent)},
		{"deleting the production snapshot's content", policyContents, "content-retain", deleteContentNamed(productionContent.Name)},

		{"switching the production volume's reclaim policy", policyVolumes, "volume-sandbox-claim",
			patchVolume(productionVolume.Name, map[string]any{"spec": map[string]any{"persistentVolumeReclaimPolicy": otherPolicy}})},
		{"labelling the production volume as drillerd's", policyVolumes, "volume-sandbox-claim",
			patchVolume(productionVolume.Name, map[string]any{"metadata": map[string]any{"labels": sandbox.Labels()}})},
		{"rebinding a restored volume to the production claim", policyVolumes, "volume-claim-unchanged",
			patchVolume(restoredVolume, map[string]any{"spec": map[string]any{"claimRef": map[string]any{"namespace": p.ns, "name": p.pg.ClaimName()}}})},
		{"switching a restored volume to Retain", policyVolumes, "volume-reclaim-delete",
			patchVolume(restoredVolume, map[string]any{"spec": map[string]any{"persistentVolumeReclaimPolicy": corev1.PersistentVolumeReclaimRetain}})},
	}

	probed := map[string]bool{}
	for _, r := range refusals {
		if probed[r.policy] {
			continue
		}
		probed[r.policy] = true
		env.WaitFor(fixture.ShortTimeout, "the API server to enforce "+r.policy, func(ctx context.Context) (bool, error) {
			err := r.do(ctx, []string{metav1.DryRunAll})
			return refusedBy(err, r.policy, r.rule), err
		})
	}

	// What drillerd does for a sandbox is admitted: the namespace, its
	// objects and database pod, a content copy created and deleted, a
	// restored volume labelled and switched to Delete, the namespace
	// deleted at the end.
	if _, err := sa.core.CoreV1().Namespaces().Create(env.Ctx, sandbox.Namespace(), metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating the sandbox namespace as drillerd: %v", err)
	}
	if _, err := sa.core.NetworkingV1().NetworkPolicies(sandboxNS).Create(env.Ctx, sandbox.NetworkPolicy(), metav1.CreateOptions{}); err != nil {
		t.Errorf("creating the sandbox's NetworkPolicy as drillerd: %v", err)
	}
	if _, err := sa.core.CoreV1().ConfigMaps(sandboxNS).Create(env.Ctx, sandbox.HBAConfigMap(access), metav1.CreateOptions{}); err != nil {
		t.Errorf("creating the sandbox's ConfigMap as drillerd: %v", err)
	}
	if _, err := sa.core.CoreV1().Secrets(sandboxNS).Create(env.Ctx, sandbox.TLSSecret(access), metav1.CreateOptions{}); err != nil {
		t.Errorf("creating the sandbox's TLS Secret as drillerd: %v", err)
	}
	if _, err := sa.core.CoreV1().Pods(sandboxNS).Create(env.Ctx, sandbox.DatabasePod(), metav1.CreateOptions{}); err != nil {
		t.Errorf("creating the sandbox's database pod as drillerd: %v", err)
	}
	copied := sandbox.ContentCopy(productionContent, ptr.Deref(productionContent.Status.SnapshotHandle, ""))
	if _, err := sa.snapshots.SnapshotV1().VolumeSnapshotContents().Create(env.Ctx, copied, metav1.CreateOptions{}); err != nil {
		t.Errorf("creating the content copy as drillerd: %v", err)
	} else if err := sa.snapshots.SnapshotV1().VolumeSnapshotContents().Delete(env.Ctx, copied.Name, metav1.DeleteOptions{}); err != nil {
		t.Errorf("deleting the content copy as drillerd: %v", err)
	}
	release := patchVolume(restoredVolume, map[string]any{
		"metadata": map[string]any{"labels": sandbox.Labels()},
		"spec":     map[string]any{"persistentVolumeReclaimPolicy": corev1.PersistentVolumeReclaimDelete},
	})
	if err := release(env.Ctx, nil); err != nil {
		t.Errorf("labelling the restored volume and switching it to Delete as drillerd: %v", err)
	}

	refusalsStart := time.Now()
	for _, r := range refusals {
		t.Run(r.name, func(t *testing.T) {
			err := r.do(env.Ctx, nil)
			if !refusedBy(err, r.policy, r.rule) {
				t.Fatalf("got %v; want a 403 from %s naming %s", err, r.policy, r.rule)
			}
			t.Logf("refused: %v", err)
		})
	}

	if err := sa.core.CoreV1().Namespaces().Delete(env.Ctx, sandboxNS, metav1.DeleteOptions{}); err != nil {
		t.Errorf("deleting the sandbox namespace as drillerd: %v", err)
	}

	// Whoever reads the audit log sees each refusal with its rule.
	env.WaitFor(fixture.ShortTimeout, "every refusal to be in the audit log", func(context.Context) (bool, error) {
		_, refused := auditOf(t, serviceAccount, refusalsStart)
		for _, r := range refusals {
			found := false
			for _, entry := range refused {
				found = found || strings.Contains(entry, "denied request: "+r.rule+":")
			}
			if !found {
				return false, fmt.Errorf("no refusal naming %s in the audit log", r.rule)
			}
		}
		return true, nil
	})

	t.Run("auth mode Secret: Secrets only where a RoleBinding grants them", func(t *testing.T) { secretReader(t, p, sa) })
}

// secretReader: drillerd may read no Secret until a namespace binds
// drillerd-secret-reader to it as the README says; then a drill with
// auth.mode Secret passes as the ServiceAccount with the admission
// policies enforced, and the API server refuses it nothing.
func secretReader(t *testing.T, p *production, sa *serviceAccountClients) {
	env := p.env
	allowed := func(attr authorizationv1.ResourceAttributes) bool {
		t.Helper()
		review, err := env.Client.AuthorizationV1().SubjectAccessReviews().Create(env.Ctx, &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{User: serviceAccount, ResourceAttributes: &attr},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return review.Status.Allowed
	}
	getSecrets := func(ns string) authorizationv1.ResourceAttributes {
		return authorizationv1.ResourceAttributes{Namespace: ns, Verb: "get", Resource: "secrets"}
	}
	for _, ns := range []string{"", p.ns, "drillerd-system"} {
		if allowed(getSecrets(ns)) {
			t.Errorf("drillerd may get secrets in %q without a RoleBinding", ns)
		}
	}

	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: p.ns, Name: "drillerd-secret-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "drillerd-secret-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "drillerd-system", Name: "drillerd"}},
	}
	if _, err := env.Client.RbacV1().RoleBindings(p.ns).Create(env.Ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := fixture.AwaitAllowed(env.Ctx, env.Client, serviceAccount, getSecrets(p.ns)); err != nil {
		t.Fatalf("after the RoleBinding: %v", err)
	}
	for _, attr := range []authorizationv1.ResourceAttributes{getSecrets(""), getSecrets("drillerd-system"), {Namespace: p.ns, Verb: "list", Resource: "secrets"}} {
		if allowed(attr) {
			t.Errorf("drillerd may %s secrets in %q after a RoleBinding in %s only", attr.Verb, attr.Namespace, p.ns)
		}
	}

	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: p.ns, Name: "admission-db-credentials"},
		StringData: map[string]string{"user": fixture.DBUser, "password": fixture.DBPassword},
	}
	if _, err := env.Client.CoreV1().Secrets(p.ns).Create(env.Ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kubeconfig := t.TempDir() + "/drillerd.kubeconfig"
	writeTokenKubeconfig(t, kubeconfig, sa.token)

	started := time.Now()
	proc := replaceDaemon(t, "admission", kubeconfig)

	d := p.newDrill("admission-secret").secretAuth(secret.Name, "user", "password").
		check("orders-present", "SELECT count(*) FROM orders", drillsv1.Expectation{Min: ptr.To("1000")})
	run, code := p.runAs(t, kubeconfig, d)
	if code != 0 || run.Status.Result != drillsv1.ResultSucceeded {
		t.Fatalf("exit %d, %s (%s: %s): want a passing drill with the Secret read through the RoleBinding (log %s)",
			code, run.Status.Result, run.Status.Reason, run.Status.Message, proc.LogPath)
	}
	requests, refused := auditOf(t, serviceAccount, started)
	if requests < 20 {
		t.Errorf("the audit log shows only %d requests by %s: was drillerd using its token?", requests, serviceAccount)
	}
	for _, r := range refused {
		t.Errorf("the API server refused drillerd: %s", r)
	}
}

// waitPoliciesTypeChecked waits until the API server has type-checked
// every policy of deploy/ against the schemas of what it matches
// (VolumeSnapshotContent's from its CRD), and fails on any warning: a
// misspelt field would otherwise fail only when a request comes.
func waitPoliciesTypeChecked(t *testing.T, env *fixture.Env) {
	t.Helper()
	for _, name := range []string{policyNamespaces, policyPods, policyObjects, policyContents, policyVolumes} {
		env.WaitFor(fixture.ShortTimeout, "ValidatingAdmissionPolicy "+name+" to be type-checked", func(ctx context.Context) (bool, error) {
			policy, err := env.Client.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			if policy.Status.ObservedGeneration != policy.Generation {
				return false, nil
			}
			if tc := policy.Status.TypeChecking; tc != nil {
				for _, w := range tc.ExpressionWarnings {
					t.Errorf("ValidatingAdmissionPolicy %s: %s: %s", name, w.FieldRef, w.Warning)
				}
			}
			return true, nil
		})
	}
}

// adminNamespace creates a namespace as the administrator and removes it
// when the test ends.
func adminNamespace(t *testing.T, env *fixture.Env, name string, labels map[string]string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if _, err := env.Client.CoreV1().Namespaces().Create(env.Ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.DeleteNamespace(context.Background(), name) })
	env.WaitFor(fixture.ShortTimeout, "default service account in "+name, func(ctx context.Context) (bool, error) {
		_, err := env.Client.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	return name
}

// adminContent creates a content as the administrator and removes it when
// the test ends.
func adminContent(t *testing.T, env *fixture.Env, c *snapshotv1.VolumeSnapshotContent) string {
	t.Helper()
	if _, err := env.Snapshots.SnapshotV1().VolumeSnapshotContents().Create(env.Ctx, c, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		err := env.Snapshots.SnapshotV1().VolumeSnapshotContents().Delete(context.Background(), c.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("deleting VolumeSnapshotContent %s: %v", c.Name, err)
		}
	})
	return c.Name
}

// adminVolume creates, as the administrator, a Retain volume bound in
// advance to the data claim of sandbox namespace ns, as a restored volume
// is; nothing backs it, and the claim is never created.
func adminVolume(t *testing.T, env *fixture.Env, name, ns string) string {
	t.Helper()
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			ClaimRef:                      &corev1.ObjectReference{Namespace: ns, Name: restore.DataClaimName},
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				CSI: &corev1.CSIPersistentVolumeSource{Driver: unservedDriver, VolumeHandle: "admission-no-such-volume"},
			},
		},
	}
	if _, err := env.Client.CoreV1().PersistentVolumes().Create(env.Ctx, pv, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		err := env.Client.CoreV1().PersistentVolumes().Delete(context.Background(), name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("deleting PersistentVolume %s: %v", name, err)
		}
	})
	return name
}

func merge(maps ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range maps {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}
