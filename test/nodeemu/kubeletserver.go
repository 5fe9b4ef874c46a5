package nodeemu

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// The kubelet's HTTPS API, as far as the API server uses it for pods/log:
// GET /containerLogs/<namespace>/<pod>/<container> with the pod log
// options as query parameters (tailLines, limitBytes, sinceSeconds,
// sinceTime, timestamps, previous, follow, stream).
//
// As a kubelet with --anonymous-auth=false, --client-ca-file and
// --authorization-mode=Webhook: a request must present a client
// certificate the cluster CA signed (its CN is the user, its O the
// groups), else 401; the API server's SubjectAccessReview must then allow
// that user get on nodes/proxy of this node, else 403.

// KubeletServing configures the emulated kubelet's HTTPS server.
type KubeletServing struct {
	// Address to listen on; default 127.0.0.1:0 (a free port). The Node's
	// status.daemonEndpoints.kubeletEndpoint.Port advertises the port.
	Address string
	// CertFile and KeyFile are the serving certificate, valid for the
	// node's InternalIP (127.0.0.1), and its key.
	CertFile, KeyFile string
	// ClientCAFile holds the CA that signs client certificates.
	ClientCAFile string
}

func (s KubeletServing) validate() error {
	if s.CertFile == "" || s.KeyFile == "" || s.ClientCAFile == "" {
		return errors.New("nodeemu: Serving.CertFile, Serving.KeyFile and Serving.ClientCAFile are required (the kubelet API serves pods/log)")
	}
	return nil
}

// tlsConfig is the server's TLS: its certificate, and client certificates
// verified against the client CA when given.
func (s KubeletServing) tlsConfig() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("nodeemu: kubelet serving certificate: %w", err)
	}
	ca, err := os.ReadFile(s.ClientCAFile)
	if err != nil {
		return nil, fmt.Errorf("nodeemu: kubelet client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("nodeemu: no certificate in the client CA file %s", s.ClientCAFile)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.VerifyClientCertIfGiven,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// listenKubelet opens the kubelet API's listener.
func (e *Emulator) listenKubelet() (net.Listener, error) {
	cfg, err := e.cfg.Serving.tlsConfig()
	if err != nil {
		return nil, err
	}
	addr := e.cfg.Serving.Address
	if addr == "" {
		addr = net.JoinHostPort(hostIP, "0")
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("nodeemu: kubelet API: %w", err)
	}
	return tls.NewListener(l, cfg), nil
}

// serveKubelet serves the kubelet API on l until ctx ends.
func (e *Emulator) serveKubelet(ctx context.Context, l net.Listener) error {
	s := &kubeletServer{nodeName: e.cfg.NodeName, authorize: reviewAccess(e.client), logs: e}
	srv := &http.Server{
		Handler: s, ReadHeaderTimeout: 10 * time.Second, ErrorLog: e.log,
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	stop := context.AfterFunc(ctx, func() {
		shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if srv.Shutdown(shutdown) != nil {
			srv.Close()
		}
	})
	defer stop()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return ctx.Err()
}

// requestAttributes is what the kubelet asks the authorizer about a
// request to its API.
type requestAttributes struct {
	user        string
	groups      []string
	verb        string
	node        string
	subresource string
}

// authorizer decides whether a user may make a request.
type authorizer func(ctx context.Context, a requestAttributes) (allowed bool, err error)

// reviewAccess asks the API server (a SubjectAccessReview), as the
// kubelet's webhook authorizer does.
func reviewAccess(client kubernetes.Interface) authorizer {
	return func(ctx context.Context, a requestAttributes) (bool, error) {
		review, err := client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{
				User: a.user, Groups: a.groups,
				ResourceAttributes: &authorizationv1.ResourceAttributes{
					Verb: a.verb, Version: "v1", Resource: "nodes", Subresource: a.subresource, Name: a.node,
				},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			return false, err
		}
		return review.Status.Allowed, nil
	}
}

// containerLogs finds container logs for the kubelet API.
type containerLogs interface {
	// containerLog returns the log file of a container of a pod (of its
	// run before the current one, with previous) and whether that run is
	// still running; a *logError says why not.
	containerLog(namespace, pod, container string, previous bool) (path string, running func() bool, err error)
}

// logError is a refusal with its HTTP status.
type logError struct {
	code    int
	message string
}

func (e *logError) Error() string { return e.message }

// kubeletServer is the kubelet API's handler.
type kubeletServer struct {
	nodeName  string
	authorize authorizer
	logs      containerLogs
}

func (s *kubeletServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	client := r.TLS.VerifiedChains[0][0]
	attrs := requestAttributes{
		user: client.Subject.CommonName, groups: client.Subject.Organization,
		verb: apiVerb(r.Method), node: s.nodeName, subresource: "proxy",
	}
	allowed, err := s.authorize(r.Context(), attrs)
	if err != nil {
		http.Error(w, fmt.Sprintf("Authorization error (user=%s, verb=%s, resource=nodes, subresource(s)=[%s])", attrs.user, attrs.verb, attrs.subresource), http.StatusInternalServerError)
		return
	}
	if !allowed {
		http.Error(w, fmt.Sprintf("Forbidden (user=%s, verb=%s, resource=nodes, subresource(s)=[%s])", attrs.user, attrs.verb, attrs.subresource), http.StatusForbidden)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/containerLogs/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet {
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	s.containerLogs(w, r, strings.Split(rest, "/"))
}

// apiVerb is the authorizer's verb for an HTTP method.
func apiVerb(method string) string {
	switch method {
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		return "delete"
	}
	return "get"
}

// containerLogs serves /containerLogs/<namespace>/<pod>/<container>.
func (s *kubeletServer) containerLogs(w http.ResponseWriter, r *http.Request, parts []string) {
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		http.Error(w, `{"message": "Missing podNamespace, podID or container name."}`, http.StatusBadRequest)
		return
	}
	namespace, pod, container := parts[0], parts[1], parts[2]
	opts, err := parseLogOptions(r.URL.Query(), time.Now())
	if err != nil {
		var le *logError
		if errors.As(err, &le) {
			http.Error(w, le.message, le.code)
			return
		}
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	path, running, err := s.logs.containerLog(namespace, pod, container, opts.previous)
	if err != nil {
		code := http.StatusBadRequest
		var le *logError
		if errors.As(err, &le) {
			code = le.code
		}
		http.Error(w, err.Error(), code)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	out := io.Writer(w)
	if f, ok := w.(http.Flusher); ok {
		out = flushWriter{w: w, f: f}
	}
	if err := readContainerLog(r.Context(), path, opts.logOptions, running, out); err != nil && r.Context().Err() == nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
	}
}

// flushWriter sends each write at once, as the kubelet's flushwriter does.
type flushWriter struct {
	w io.Writer
	f http.Flusher
}

func (fw flushWriter) Write(p []byte) (int, error) {
	n, err := fw.w.Write(p)
	fw.f.Flush()
	return n, err
}

// podLogRequest is a decoded pod log request.
type podLogRequest struct {
	logOptions
	previous bool
}

// parseLogOptions decodes the pod log options of the query and validates
// them as the kubelet does (ValidatePodLogOptions).
func parseLogOptions(q map[string][]string, now time.Time) (podLogRequest, error) {
	undecodable := &logError{http.StatusBadRequest, `{"message": "Unable to decode query."}`}
	invalid := &logError{http.StatusUnprocessableEntity, `{"message": "Invalid request."}`}
	get := func(key string) (string, bool) {
		v, ok := q[key]
		if !ok || len(v) == 0 {
			return "", false
		}
		return v[0], true
	}
	flag := func(key string) (bool, error) {
		v, ok := get(key)
		if !ok || v == "" {
			return false, nil
		}
		return strconv.ParseBool(v)
	}
	number := func(key string) (*int64, error) {
		v, ok := get(key)
		if !ok || v == "" {
			return nil, nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		return &n, err
	}
	req := podLogRequest{logOptions: logOptions{tailLines: -1, limitBytes: -1, stdout: true, stderr: true}}
	var err error
	if req.follow, err = flag("follow"); err != nil {
		return req, undecodable
	}
	if req.previous, err = flag("previous"); err != nil {
		return req, undecodable
	}
	if req.timestamps, err = flag("timestamps"); err != nil {
		return req, undecodable
	}
	// The kubelet still takes "tail" ("all" for no limit) for tailLines.
	if tail, ok := get("tail"); ok && tail != "" {
		if tail == "all" {
			delete(q, "tailLines")
		} else {
			q["tailLines"] = []string{tail}
		}
	}
	tailLines, err := number("tailLines")
	if err != nil {
		return req, undecodable
	}
	limitBytes, err := number("limitBytes")
	if err != nil {
		return req, undecodable
	}
	sinceSeconds, err := number("sinceSeconds")
	if err != nil {
		return req, undecodable
	}
	var sinceTime *time.Time
	if v, ok := get("sinceTime"); ok && v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return req, undecodable
		}
		sinceTime = &t
	}
	stream, _ := get("stream")
	switch {
	case tailLines != nil && *tailLines < 0,
		limitBytes != nil && *limitBytes < 1,
		sinceSeconds != nil && *sinceSeconds < 1,
		sinceSeconds != nil && sinceTime != nil,
		stream != "" && stream != string(corev1.LogStreamAll) && tailLines != nil:
		return req, invalid
	}
	switch stream {
	case "", string(corev1.LogStreamAll):
	case string(corev1.LogStreamStdout):
		req.stderr = false
	case string(corev1.LogStreamStderr):
		req.stdout = false
	default:
		return req, invalid
	}
	if tailLines != nil {
		req.tailLines = *tailLines
	}
	if limitBytes != nil {
		req.limitBytes = *limitBytes
	}
	switch {
	case sinceSeconds != nil:
		req.since = now.Add(-time.Duration(*sinceSeconds) * time.Second)
	case sinceTime != nil:
		req.since = *sinceTime
	}
	return req, nil
}

// containerLog finds a container's log for the kubelet API, from the pod
// as the kubelet knows it: its worker's live status, else the status in
// the API.
func (e *Emulator) containerLog(namespace, name, container string, previous bool) (string, func() bool, error) {
	e.kubeletMu.Lock()
	k := e.kubelet
	e.kubeletMu.Unlock()
	if k == nil {
		return "", nil, &logError{http.StatusServiceUnavailable, "the node is starting"}
	}
	obj, exists, err := k.pods.GetByKey(namespace + "/" + name)
	if err != nil || !exists {
		return "", nil, &logError{http.StatusNotFound, fmt.Sprintf("pod %q does not exist", name)}
	}
	pod := obj.(*corev1.Pod)
	if !hasContainer(pod, container) {
		return "", nil, &logError{http.StatusNotFound, fmt.Sprintf("container %q not found in pod %q", container, name)}
	}
	status := pod.Status
	k.mu.Lock()
	pw := k.workers[namespace+"/"+name]
	k.mu.Unlock()
	if pw != nil && pw.pod.UID == pod.UID {
		status = pw.containerStatusesNow()
	} else {
		pw = nil
	}
	id, err := logContainerID(name, status, container, previous)
	if err != nil {
		return "", nil, err
	}
	path, ok := e.containerLogPath(pod.UID, container, id)
	if !ok {
		return "", nil, fmt.Errorf("container %q in pod %q has no log", container, name)
	}
	running := func() bool { return pw != nil && pw.runs(id) }
	return path, running, nil
}

func hasContainer(pod *corev1.Pod, name string) bool {
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range list {
			if c.Name == name {
				return true
			}
		}
	}
	return false
}

// logContainerID picks the container run whose log the kubelet returns, as
// its validateContainerLogStatus does: the previous run's with previous,
// else the running or last terminated one; a waiting container has none.
func logContainerID(podName string, status corev1.PodStatus, container string, previous bool) (string, error) {
	var cs *corev1.ContainerStatus
	for _, list := range [][]corev1.ContainerStatus{status.ContainerStatuses, status.InitContainerStatuses} {
		for i := range list {
			if list[i].Name == container {
				cs = &list[i]
			}
		}
	}
	if cs == nil {
		return "", fmt.Errorf("container %q in pod %q is not available", container, podName)
	}
	last := cs.LastTerminationState.Terminated
	waiting, running, terminated := cs.State.Waiting, cs.State.Running, cs.State.Terminated
	switch {
	case previous:
		if last == nil || last.ContainerID == "" {
			return "", fmt.Errorf("previous terminated container %q in pod %q not found", container, podName)
		}
		return last.ContainerID, nil
	case running != nil:
		return cs.ContainerID, nil
	case terminated != nil:
		if terminated.ContainerID != "" {
			return terminated.ContainerID, nil
		}
		if last != nil && last.ContainerID != "" {
			return last.ContainerID, nil
		}
		return "", fmt.Errorf("container %q in pod %q is terminated", container, podName)
	case last != nil:
		if last.ContainerID == "" {
			return "", fmt.Errorf("container %q in pod %q is terminated", container, podName)
		}
		return last.ContainerID, nil
	case waiting != nil:
		switch waiting.Reason {
		case "ErrImagePull":
			return "", fmt.Errorf("container %q in pod %q is waiting to start: image can't be pulled", container, podName)
		case "ImagePullBackOff":
			return "", fmt.Errorf("container %q in pod %q is waiting to start: trying and failing to pull image", container, podName)
		}
		return "", fmt.Errorf("container %q in pod %q is waiting to start: %v", container, podName, waiting.Reason)
	}
	return "", fmt.Errorf("container %q in pod %q is waiting to start - no logs yet", container, podName)
}

// containerStatusesNow is the pod's container statuses as the worker
// knows them now.
func (pw *podWorker) containerStatusesNow() corev1.PodStatus {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	return corev1.PodStatus{InitContainerStatuses: pw.containerStatuses(pw.init), ContainerStatuses: pw.containerStatuses(pw.containers)}
}

// runs reports whether the container run containerID is running.
func (pw *podWorker) runs(containerID string) bool {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	for _, list := range [][]*containerState{pw.init, pw.containers} {
		for _, cs := range list {
			if cs.containerID == containerID && cs.state.Running != nil {
				return true
			}
		}
	}
	return false
}
