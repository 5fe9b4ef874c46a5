package nodeemu

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// testCA signs certificates for the kubelet API's tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key}
}

func (ca *testCA) issue(t *testing.T, tmpl *x509.Certificate) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func (ca *testCA) client(t *testing.T, user string, groups ...string) tls.Certificate {
	return ca.issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: user, Organization: groups}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
}

// fakeLogs serves one container's log file.
type fakeLogs struct{ path string }

func (f fakeLogs) containerLog(namespace, pod, container string, previous bool) (string, func() bool, error) {
	switch {
	case namespace != "drill-orders-1" || pod != "database":
		return "", nil, &logError{http.StatusNotFound, fmt.Sprintf("pod %q does not exist", pod)}
	case container != "database":
		return "", nil, &logError{http.StatusNotFound, fmt.Sprintf("container %q not found in pod %q", container, pod)}
	case previous:
		return "", nil, fmt.Errorf("previous terminated container %q in pod %q not found", container, pod)
	}
	return f.path, func() bool { return false }, nil
}

// apiServerUser is who the tests' SubjectAccessReviews allow.
const apiServerUser = "kube-apiserver-kubelet-client"

// The kubelet API answers the API server (a client certificate of the
// cluster CA whose user the API server authorizes for nodes/proxy) with
// the container's log as the options ask, and nobody else.
func TestKubeletAPIServesContainerLogsToTheAPIServerOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	writeLog(t, path, "stderr:LOG:  database system was interrupted\n", "stderr:PANIC:  could not locate a valid checkpoint record\n",
		"stderr:LOG:  startup process (PID 7) was terminated by signal 6: Aborted\n").close()

	var reviews []authorizationv1.SubjectAccessReviewSpec
	client := fake.NewClientset()
	client.PrependReactor("create", "subjectaccessreviews", func(action k8stesting.Action) (bool, runtime.Object, error) {
		review := action.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview)
		reviews = append(reviews, review.Spec)
		a := review.Spec.ResourceAttributes
		review.Status.Allowed = review.Spec.User == apiServerUser && a != nil &&
			a.Verb == "get" && a.Resource == "nodes" && a.Subresource == "proxy" && a.Name == "node-1"
		return true, review, nil
	})
	ca, other := newTestCA(t, "cluster-ca"), newTestCA(t, "another-ca")
	srv := httptest.NewUnstartedServer(&kubeletServer{nodeName: "node-1", authorize: reviewAccess(client), logs: fakeLogs{path: path}})
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{ca.issue(t, &x509.Certificate{IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})},
		ClientCAs:    certPool(ca.cert),
		ClientAuth:   tls.VerifyClientCertIfGiven,
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below
	srv.StartTLS()
	defer srv.Close()

	get := func(cert *tls.Certificate, path string) (int, string, error) {
		tlsCfg := &tls.Config{RootCAs: certPool(ca.cert)}
		if cert != nil {
			// Presented whatever CAs the server names as acceptable.
			tlsCfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
		}
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}}
		resp, err := c.Get(srv.URL + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), err
	}
	apiServer := ca.client(t, apiServerUser)
	someone := ca.client(t, "system:serviceaccount:shop:app", "system:serviceaccounts")
	forged := other.client(t, apiServerUser)

	const logs = "/containerLogs/drill-orders-1/database/database"
	tests := []struct {
		name     string
		cert     *tls.Certificate
		path     string
		wantCode int
		wantBody string
	}{
		{"the last line", &apiServer, logs + "?tailLines=1", http.StatusOK, "LOG:  startup process (PID 7) was terminated by signal 6: Aborted\n"},
		{"tail and limit, as drillerd asks", &apiServer, logs + "?tailLines=50&limitBytes=30&stream=All", http.StatusOK, "LOG:  database system was inte"},
		{"all of it", &apiServer, logs, http.StatusOK, "LOG:  database system was interrupted\nPANIC:  could not locate a valid checkpoint record\nLOG:  startup process (PID 7) was terminated by signal 6: Aborted\n"},
		{"the legacy tail parameter", &apiServer, logs + "?tail=1", http.StatusOK, "LOG:  startup process (PID 7) was terminated by signal 6: Aborted\n"},
		{"no client certificate", nil, logs, http.StatusUnauthorized, "Unauthorized\n"},
		{"a user the API server does not authorize", &someone, logs, http.StatusForbidden, "Forbidden (user=system:serviceaccount:shop:app, verb=get, resource=nodes, subresource(s)=[proxy])\n"},
		{"an unknown pod", &apiServer, "/containerLogs/drill-orders-1/other/database", http.StatusNotFound, "pod \"other\" does not exist\n"},
		{"an unknown container", &apiServer, "/containerLogs/drill-orders-1/database/sidecar", http.StatusNotFound, "container \"sidecar\" not found in pod \"database\"\n"},
		{"no previous run", &apiServer, logs + "?previous=true", http.StatusBadRequest, "previous terminated container \"database\" in pod \"database\" not found\n"},
		{"negative tailLines", &apiServer, logs + "?tailLines=-1", http.StatusUnprocessableEntity, "{\"message\": \"Invalid request.\"}\n"},
		{"limitBytes 0", &apiServer, logs + "?limitBytes=0", http.StatusUnprocessableEntity, "{\"message\": \"Invalid request.\"}\n"},
		{"tailLines with one stream", &apiServer, logs + "?tailLines=1&stream=Stderr", http.StatusUnprocessableEntity, "{\"message\": \"Invalid request.\"}\n"},
		{"tailLines not a number", &apiServer, logs + "?tailLines=ten", http.StatusBadRequest, "{\"message\": \"Unable to decode query.\"}\n"},
		{"another kubelet endpoint", &apiServer, "/exec/drill-orders-1/database/database", http.StatusNotFound, "404 page not found\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body, err := get(tt.cert, tt.path)
			if err != nil {
				t.Fatal(err)
			}
			if code != tt.wantCode || body != tt.wantBody {
				t.Errorf("GET %s: %d %q\nwant %d %q", tt.path, code, body, tt.wantCode, tt.wantBody)
			}
		})
	}
	asked := len(reviews)
	if code, body, err := get(&forged, logs); err == nil {
		t.Errorf("a client certificate of another CA was accepted: %d %q", code, body)
	}
	if len(reviews) != asked {
		t.Errorf("a client certificate of another CA reached authorization: %+v", reviews[asked:])
	}
	if len(reviews) == 0 || reviews[0].User != apiServerUser || reviews[0].ResourceAttributes.Version != "v1" {
		t.Errorf("SubjectAccessReviews %+v: want the API server's user asking about nodes/proxy of node-1", reviews)
	}
}

func certPool(certs ...*x509.Certificate) *x509.CertPool {
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool
}

// The run whose log the kubelet returns, as validateContainerLogStatus
// picks it.
func TestLogContainerID(t *testing.T) {
	running := corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	terminated := func(id string) corev1.ContainerState {
		return corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, ContainerID: id}}
	}
	waiting := func(reason string) corev1.ContainerState {
		return corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}}
	}
	status := func(state, last corev1.ContainerState, id string) corev1.PodStatus {
		return corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "database", State: state, LastTerminationState: last, ContainerID: id}}}
	}
	tests := []struct {
		name     string
		status   corev1.PodStatus
		previous bool
		wantID   string
		wantErr  string
	}{
		{"running: the current run", status(running, corev1.ContainerState{}, "emulator://u-database-0"), false, "emulator://u-database-0", ""},
		{"terminated: that run", status(terminated("emulator://u-database-0"), corev1.ContainerState{}, "emulator://u-database-0"), false, "emulator://u-database-0", ""},
		{"restarted and waiting: the last run", status(waiting("CrashLoopBackOff"), terminated("emulator://u-database-1"), "emulator://u-database-1"), false, "emulator://u-database-1", ""},
		{"previous: the run before", status(running, terminated("emulator://u-database-1"), "emulator://u-database-2"), true, "emulator://u-database-1", ""},
		{"previous without one", status(running, corev1.ContainerState{}, "emulator://u-database-0"), true, "", `previous terminated container "database" in pod "database" not found`},
		{"never started: StartError", status(terminated(""), corev1.ContainerState{}, ""), false, "", `container "database" in pod "database" is terminated`},
		{"image not pulled", status(waiting("ImagePullBackOff"), corev1.ContainerState{}, ""), false, "", `container "database" in pod "database" is waiting to start: trying and failing to pull image`},
		{"creating", status(waiting("ContainerCreating"), corev1.ContainerState{}, ""), false, "", `container "database" in pod "database" is waiting to start: ContainerCreating`},
		{"no status yet", corev1.PodStatus{}, false, "", `container "database" in pod "database" is not available`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := logContainerID("database", tt.status, "database", tt.previous)
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if id != tt.wantID || gotErr != tt.wantErr {
				t.Errorf("logContainerID = %q, %q; want %q, %q", id, gotErr, tt.wantID, tt.wantErr)
			}
		})
	}
}

func TestContainerLogPathOfAContainerID(t *testing.T) {
	e := &Emulator{cfg: Config{StateDir: "/state"}}
	uid := "0a1b-2c3d"
	tests := []struct {
		id, container string
		want          string
		ok            bool
	}{
		{emulatedContainerID("0a1b-2c3d", "database", 0), "database", "/state/pods/0a1b-2c3d/logs/database/0.log", true},
		{emulatedContainerID("0a1b-2c3d", "my-db", 12), "my-db", "/state/pods/0a1b-2c3d/logs/my-db/12.log", true},
		{emulatedContainerID("ffff", "database", 0), "database", "", false},
		{"containerd://abc", "database", "", false},
		{"emulator://0a1b-2c3d-database-../../x", "database", "", false},
	}
	for _, tt := range tests {
		got, ok := e.containerLogPath(types.UID(uid), tt.container, tt.id)
		if got != tt.want || ok != tt.ok {
			t.Errorf("containerLogPath(%q) = %q, %v; want %q, %v", tt.id, got, ok, tt.want, tt.ok)
		}
	}
}
