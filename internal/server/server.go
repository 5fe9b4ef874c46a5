// Package server is drillerd's HTTP API: start a drill, read a run; and
// its status page.
//
//	POST /api/v1/namespaces/{ns}/restoredrills/{name}/runs   201 {namespace, name} + Location; 404; 409 while a run has no verdict yet, or when another request made it at the same instant (httpRunName)
//	GET  /api/v1/namespaces/{ns}/drillruns/{name}            200 the DrillRun
//	GET  /, /drills/{ns}/{name}, /runs/{ns}/{name}           the status page (page.go)
//	POST /drills/{ns}/{name}/runs                            its "Run now" button (runnow.go)
//	GET  /login, POST /login, POST /logout                   the status page's sign-in (login.go)
//
// With --auth=kubernetes (the default) every API request needs an
// "Authorization: Bearer" token that the API server accepts for one of
// --api-audiences (TokenReview), and the token's user must be allowed the
// same verb on drillruns in the namespace (SubjectAccessReview): 401
// without, with an invalid token or one for another audience, 403 without
// RBAC. A client whose tokens were rejected too often is refused with 429
// for a while (ratelimit.go). Tokens in URLs are refused with 400. Errors
// are JSON.
package server

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
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
	// Audiences are those a token must be valid for (--api-audiences);
	// empty means DefaultAudience.
	Audiences []string
	// FailureLimit bounds failed authentications per client.
	FailureLimit FailureLimit
	// Clock times the failure limit and the page; nil is the real clock.
	Clock clock.PassiveClock

	mu sync.Mutex // serialises "is a run in progress? create one" in this process (httpRunName does across replicas)

	serving atomic.Bool // the listener is bound and served (ready.go)

	limiterOnce sync.Once
	failures    *failureLimiter
}

// NeedLeaderElection: every replica serves the API.
func (s *Server) NeedLeaderElection() bool { return false }

// Handler returns the API's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/namespaces/{ns}/restoredrills/{name}/runs", s.authorized("create", "RestoreDrill", s.createRun))
	mux.HandleFunc("GET /api/v1/namespaces/{ns}/drillruns/{name}", s.authorized("get", "DrillRun", s.getRun))
	mux.HandleFunc("GET /{$}", s.page)
	mux.HandleFunc("GET /drills/{ns}/{name}", s.drillPage)
	mux.HandleFunc("POST /drills/{ns}/{name}/runs", s.runNow)
	mux.HandleFunc("GET /runs/{ns}/{name}", s.runPage)
	mux.HandleFunc("GET /login", s.loginForm)
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("POST /logout", s.logout)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	return refuseTokensInURLs(mux)
}

// refuseTokensInURLs answers 400 to any request with a token in its query:
// URLs end up in access logs, proxies and browser history. The token is not
// reviewed, so a leaked one is not confirmed either.
func refuseTokensInURLs(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		param := tokenInQuery(r.URL.RawQuery)
		if param == "" {
			next.ServeHTTP(w, r)
			return
		}
		msg := fmt.Sprintf("tokens in URLs are refused (query parameter %q): send the token in the Authorization header (Authorization: Bearer <token>), or sign in to the status page at /login", param)
		if strings.HasPrefix(r.URL.Path, "/api/") {
			writeError(w, http.StatusBadRequest, msg)
			return
		}
		render(w, http.StatusBadRequest, refusedPage(msg))
	})
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
	s.serving.Store(true)
	defer s.serving.Store(false)
	s.Log.Info("serving the API", "address", l.Addr().String(), "tls", s.TLS != nil, "auth", s.Auth != nil, "audiences", s.audiences())
	select {
	case <-ctx.Done():
		s.serving.Store(false) // not ready while shutting down
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

type handlerFunc func(w http.ResponseWriter, r *http.Request, ref objectRef, user string)

// authorized authenticates the bearer token, checks the path's namespace
// and name, and checks that the token's user may `verb` drillruns in that
// namespace. Only the Authorization header is read, never the status page's
// cookie: another site cannot make a browser send the header, so the API
// needs no CSRF defence.
func (s *Server) authorized(verb, kind string, next handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		user := authenticationv1.UserInfo{Username: "anonymous"}
		if s.Auth != nil {
			token, _ := bearerToken(r)
			u, aerr := s.authenticate(r, token)
			if aerr != nil {
				aerr.headers(w)
				writeError(w, aerr.code, aerr.msg)
				return
			}
			user = u
		}
		ref, err := parseObjectRef(r.PathValue("ns"), r.PathValue("name"), kind)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		if s.Auth != nil {
			allowed, err := s.allowed(r.Context(), user, verb, "drillruns", ref.Namespace)
			if err != nil {
				s.Log.Error(err, "SubjectAccessReview failed")
				writeError(w, http.StatusServiceUnavailable, "cannot review access now; try again")
				return
			}
			if !allowed {
				writeError(w, http.StatusForbidden, fmt.Sprintf("%s may not %s drillruns.%s in namespace %s", user.Username, verb, drillsv1.GroupVersion.Group, ref.Namespace))
				return
			}
		}
		next(w, r, ref, user.Username)
	}
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

func (s *Server) createRun(w http.ResponseWriter, r *http.Request, ref objectRef, user string) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is larger than %d bytes", MaxBodyBytes))
		return
	}
	req, err := decodeRunRequest(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "the body must be empty or JSON like {\"snapshotName\": \"...\"}: "+err.Error())
		return
	}
	run, code, msg := s.startRun(r.Context(), ref, user, req.SnapshotName)
	if run == nil {
		writeError(w, code, msg)
		return
	}
	w.Header().Set("Location", fmt.Sprintf("/api/v1/namespaces/%s/drillruns/%s", ref.Namespace, run.Name))
	writeJSON(w, http.StatusCreated, map[string]string{"namespace": ref.Namespace, "name": run.Name, "drill": ref.Name})
}

// startRun creates a run of the drill ref names for user (trigger HTTP),
// unless the drill does not exist (404) or a run of it is in progress
// (409). On failure it returns the HTTP status and why.
func (s *Server) startRun(ctx context.Context, ref objectRef, user, snapshot string) (*drillsv1.DrillRun, int, string) {
	ns, name := ref.Namespace, ref.Name
	drill := &drillsv1.RestoreDrill{}
	if err := s.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, drill); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, http.StatusNotFound, fmt.Sprintf("no RestoreDrill %s in namespace %s", name, ns)
		}
		return nil, http.StatusServiceUnavailable, "cannot read the RestoreDrill: " + err.Error()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	runs := &drillsv1.DrillRunList{}
	if err := s.APIReader.List(ctx, runs, client.InNamespace(ns), client.MatchingFields{s.DrillNameField: name}); err != nil {
		return nil, http.StatusServiceUnavailable, "cannot list runs: " + err.Error()
	}
	for _, existing := range runs.Items {
		if !existing.Status.Concluded() { // a run tearing down has its verdict: it does not hold the drill
			return nil, http.StatusConflict, fmt.Sprintf("run %s of drill %s is still in progress", existing.Name, name)
		}
	}
	run := &drillsv1.DrillRun{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: httpRunName(drill, runs.Items),
			Labels:      map[string]string{drillsv1.LabelDrill: name},
			Annotations: map[string]string{"drills.drillerd.dev/requested-by": user},
		},
		Spec: drillsv1.DrillRunSpec{DrillName: name, Trigger: drillsv1.TriggerHTTP, SnapshotName: snapshot},
	}
	if err := s.Client.Create(ctx, run); apierrors.IsAlreadyExists(err) {
		// Another request (on this replica or another) that saw the same
		// runs made this one a moment ago.
		return nil, http.StatusConflict, fmt.Sprintf("run %s of drill %s was requested at the same moment and is in progress", run.Name, name)
	} else if err != nil {
		return nil, http.StatusServiceUnavailable, "cannot create the DrillRun: " + err.Error()
	}
	s.Log.Info("run requested", "namespace", ns, "drill", name, "run", run.Name, "user", user)
	return run, http.StatusCreated, ""
}

func (s *Server) getRun(w http.ResponseWriter, r *http.Request, ref objectRef, _ string) {
	run := &drillsv1.DrillRun{}
	err := s.Client.Get(r.Context(), types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}, run)
	switch {
	case apierrors.IsNotFound(err):
		writeError(w, http.StatusNotFound, fmt.Sprintf("no DrillRun %s in namespace %s", ref.Name, ref.Namespace))
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, "cannot read the DrillRun: "+err.Error())
	default:
		run.APIVersion, run.Kind = drillsv1.GroupVersion.String(), "DrillRun"
		run.ManagedFields = nil
		writeJSON(w, http.StatusOK, run)
	}
}

// httpRunName names the run a request creates after its drill and the
// runs the request found: the newest ones, those created in the same
// second as the newest (creation times have seconds). Two requests that
// found the same runs, such as two replicas answering at the same
// instant, ask the API server for the same name, and it creates one run:
// the other request gets AlreadyExists. The run it made is among the
// newest runs the next request finds, so that one names another.
func httpRunName(drill *drillsv1.RestoreDrill, runs []drillsv1.DrillRun) string {
	var newest time.Time
	for _, r := range runs {
		if t := r.CreationTimestamp.Time; t.After(newest) {
			newest = t
		}
	}
	var uids []string
	for _, r := range runs {
		if r.CreationTimestamp.Time.Equal(newest) {
			uids = append(uids, string(r.UID))
		}
	}
	sort.Strings(uids)
	sum := sha256.New()
	fmt.Fprintf(sum, "%s\n", drill.UID)
	for _, uid := range uids {
		fmt.Fprintf(sum, "%s\n", uid)
	}
	return trimName(drill.Name) + "-http-" + hex.EncodeToString(sum.Sum(nil))[:10]
}

func trimName(s string) string {
	if len(s) > 50 {
		return s[:50]
	}
	return s
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]any{"error": msg, "code": code})
}
