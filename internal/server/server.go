// Package server is drillerd's HTTP API: start a drill, read a run.
//
//	POST /api/v1/namespaces/{ns}/restoredrills/{name}/runs   201 {namespace, name} + Location; 404; 409 while a run is in progress
//	GET  /api/v1/namespaces/{ns}/drillruns/{name}            200 the DrillRun
//
// With --auth=kubernetes (the default) every request needs a bearer token
// that the API server accepts (TokenReview), and the token's user must be
// allowed the same verb on drillruns in the namespace (SubjectAccessReview):
// 401 without or with an invalid token, 403 without RBAC. Errors are JSON.
package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
)

// MaxBodyBytes bounds request bodies.
const MaxBodyBytes = 64 << 10

// Server serves the API on its own listener.
type Server struct {
	Addr string
	// TLS is the listener's configuration; nil serves plain HTTP (tests only).
	TLS *tls.Config
	// Client reads drills and runs and creates runs.
	Client client.Client
	// APIReader lists a drill's runs from the API server itself for the
	// 409 check, so that a run created a moment ago counts even before the
	// cache has it (spec.drillName is a selectable field of DrillRuns).
	APIReader client.Reader
	// Auth reviews tokens and access; nil means --auth=none.
	Auth kubernetes.Interface
	Log  logr.Logger
	// DrillNameField is the index of DrillRuns by spec.drillName.
	DrillNameField string

	mu sync.Mutex // serialises "is a run in progress? create one" per process
}

// NeedLeaderElection: every replica serves the API.
func (s *Server) NeedLeaderElection() bool { return false }

// Handler returns the API's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/namespaces/{ns}/restoredrills/{name}/runs", s.authorized("create", s.createRun))
	mux.HandleFunc("GET /api/v1/namespaces/{ns}/drillruns/{name}", s.authorized("get", s.getRun))
	mux.HandleFunc("GET /{$}", s.page)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	return mux
}

// Start serves until ctx ends, then shuts down gracefully.
func (s *Server) Start(ctx context.Context) error {
	srv := &http.Server{
		Addr:              s.Addr,
		Handler:           s.Handler(),
		TLSConfig:         s.TLS,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	l, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("while listening on --api-bind-address %s: %w", s.Addr, err)
	}
	if s.TLS != nil {
		l = tls.NewListener(l, s.TLS)
	}
	errs := make(chan error, 1)
	go func() { errs <- srv.Serve(l) }()
	s.Log.Info("serving the API", "address", l.Addr().String(), "tls", s.TLS != nil, "auth", s.Auth != nil)
	select {
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return srv.Shutdown(shutdown)
	case err := <-errs:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, user string)

// authorized authenticates the bearer token and checks that its user may
// `verb` drillruns in the request's namespace.
func (s *Server) authorized(verb string, next handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ns := r.PathValue("ns")
		if s.Auth == nil {
			next(w, r, "anonymous")
			return
		}
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		user, code, msg := s.authenticate(r.Context(), token, ok)
		if code != 0 {
			if code == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="drillerd"`)
			}
			writeError(w, code, msg)
			return
		}
		allowed, err := s.allowed(r.Context(), user, verb, "drillruns", ns)
		if err != nil {
			s.Log.Error(err, "SubjectAccessReview failed")
			writeError(w, http.StatusServiceUnavailable, "cannot review access now; try again")
			return
		}
		if !allowed {
			writeError(w, http.StatusForbidden, fmt.Sprintf("%s may not %s drillruns.%s in namespace %s", user.Username, verb, drillsv1.GroupVersion.Group, ns))
			return
		}
		next(w, r, user.Username)
	}
}

// authenticate reviews a bearer token; a non-zero code is the HTTP answer.
func (s *Server) authenticate(ctx context.Context, token string, present bool) (authenticationv1.UserInfo, int, string) {
	token = strings.TrimSpace(token)
	if !present || token == "" {
		return authenticationv1.UserInfo{}, http.StatusUnauthorized, "a bearer token is required (Authorization: Bearer <token>)"
	}
	review, err := s.Auth.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token},
	}, metav1.CreateOptions{})
	if err != nil {
		s.Log.Error(err, "TokenReview failed")
		return authenticationv1.UserInfo{}, http.StatusServiceUnavailable, "cannot review the token now; try again"
	}
	if !review.Status.Authenticated {
		return authenticationv1.UserInfo{}, http.StatusUnauthorized, "the token is not valid"
	}
	return review.Status.User, 0, ""
}

// allowed asks the API server whether user may verb resource in namespace.
func (s *Server) allowed(ctx context.Context, u authenticationv1.UserInfo, verb, resource, namespace string) (bool, error) {
	extra := map[string]authorizationv1.ExtraValue{}
	for k, v := range u.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	sar, err := s.Auth.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User: u.Username, UID: u.UID, Groups: u.Groups, Extra: extra,
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: namespace, Verb: verb, Group: drillsv1.GroupVersion.Group, Resource: resource,
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return false, err
	}
	return sar.Status.Allowed, nil
}

// runRequest is the optional body of POST .../runs.
type runRequest struct {
	SnapshotName string `json:"snapshotName,omitempty"`
}

func (s *Server) createRun(w http.ResponseWriter, r *http.Request, user string) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	var req runRequest
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is larger than %d bytes", MaxBodyBytes))
		return
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, "the body must be JSON like {\"snapshotName\": \"...\"}: "+err.Error())
			return
		}
	}
	ctx := r.Context()
	drill := &drillsv1.RestoreDrill{}
	if err := s.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, drill); err != nil {
		if apierrors.IsNotFound(err) {
			writeError(w, http.StatusNotFound, fmt.Sprintf("no RestoreDrill %s in namespace %s", name, ns))
			return
		}
		writeError(w, http.StatusServiceUnavailable, "cannot read the RestoreDrill: "+err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	runs := &drillsv1.DrillRunList{}
	if err := s.APIReader.List(ctx, runs, client.InNamespace(ns), client.MatchingFields{s.DrillNameField: name}); err != nil {
		writeError(w, http.StatusServiceUnavailable, "cannot list runs: "+err.Error())
		return
	}
	for _, existing := range runs.Items {
		if existing.Status.Phase != drillsv1.PhaseDone {
			writeError(w, http.StatusConflict, fmt.Sprintf("run %s of drill %s is still in progress", existing.Name, name))
			return
		}
	}
	run := &drillsv1.DrillRun{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, GenerateName: trimName(name) + "-http-",
			Labels:      map[string]string{drillsv1.LabelDrill: name},
			Annotations: map[string]string{"drills.drillerd.dev/requested-by": user},
		},
		Spec: drillsv1.DrillRunSpec{DrillName: name, Trigger: drillsv1.TriggerHTTP, SnapshotName: req.SnapshotName},
	}
	if err := s.Client.Create(ctx, run); err != nil {
		writeError(w, http.StatusServiceUnavailable, "cannot create the DrillRun: "+err.Error())
		return
	}
	s.Log.Info("run requested", "namespace", ns, "drill", name, "run", run.Name, "user", user)
	w.Header().Set("Location", fmt.Sprintf("/api/v1/namespaces/%s/drillruns/%s", ns, run.Name))
	writeJSON(w, http.StatusCreated, map[string]string{"namespace": ns, "name": run.Name, "drill": name})
}

func (s *Server) getRun(w http.ResponseWriter, r *http.Request, _ string) {
	run := &drillsv1.DrillRun{}
	err := s.Client.Get(r.Context(), types.NamespacedName{Namespace: r.PathValue("ns"), Name: r.PathValue("name")}, run)
	switch {
	case apierrors.IsNotFound(err):
		writeError(w, http.StatusNotFound, fmt.Sprintf("no DrillRun %s in namespace %s", r.PathValue("name"), r.PathValue("ns")))
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, "cannot read the DrillRun: "+err.Error())
	default:
		run.APIVersion, run.Kind = drillsv1.GroupVersion.String(), "DrillRun"
		run.ManagedFields = nil
		writeJSON(w, http.StatusOK, run)
	}
}

func trimName(s string) string {
	if len(s) > 50 {
		return s[:50]
	}
	return s
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]any{"error": msg, "code": code})
}
