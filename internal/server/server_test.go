package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
)

// newTestServer knows the token "good" (user alice, allowed to create and
// get drillruns in shop) and "nobody" (user bob, allowed nothing).
func newTestServer(t *testing.T, objs ...client.Object) *Server {
	s := runtime.NewScheme()
	if err := drillsv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).
		WithIndex(&drillsv1.DrillRun{}, "spec.drillName", func(o client.Object) []string { return []string{o.(*drillsv1.DrillRun).Spec.DrillName} }).
		Build()
	auth := kubefake.NewClientset()
	auth.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		review := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview)
		switch review.Spec.Token {
		case "good":
			review.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{Username: "alice"}}
		case "nobody":
			review.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{Username: "bob"}}
		}
		return true, review, nil
	})
	auth.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		sar := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview)
		attr := sar.Spec.ResourceAttributes
		sar.Status.Allowed = sar.Spec.User == "alice" && attr.Namespace == "shop" && attr.Resource == "drillruns" && attr.Group == "drills.drillerd.dev"
		return true, sar, nil
	})
	return &Server{Client: c, APIReader: c, Auth: auth, Log: logr.Discard(), DrillNameField: "spec.drillName"}
}

func drill(name string) *drillsv1.RestoreDrill {
	return &drillsv1.RestoreDrill{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name}}
}

func runOf(name, drillName string, phase drillsv1.Phase) *drillsv1.DrillRun {
	return &drillsv1.DrillRun{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name},
		Spec:       drillsv1.DrillRunSpec{DrillName: drillName},
		Status:     drillsv1.DrillRunStatus{Phase: phase},
	}
}

func TestAPI(t *testing.T) {
	tests := []struct {
		name     string
		objs     []client.Object
		method   string
		path     string
		token    string
		body     string
		want     int
		wantText string
	}{
		{"no token", nil, "POST", "/api/v1/namespaces/shop/restoredrills/orders-db/runs", "", "", 401, "bearer token is required"},
		{"invalid token", nil, "POST", "/api/v1/namespaces/shop/restoredrills/orders-db/runs", "forged", "", 401, "not valid"},
		{"no RBAC", []client.Object{drill("orders-db")}, "POST", "/api/v1/namespaces/shop/restoredrills/orders-db/runs", "nobody", "", 403, "bob may not create drillruns"},
		{"RBAC in another namespace only", []client.Object{drill("orders-db")}, "POST", "/api/v1/namespaces/billing/restoredrills/orders-db/runs", "good", "", 403, "namespace billing"},
		{"created", []client.Object{drill("orders-db"), runOf("old", "orders-db", drillsv1.PhaseDone)}, "POST", "/api/v1/namespaces/shop/restoredrills/orders-db/runs", "good", "", 201, `"drill":"orders-db"`},
		{"created with a pinned snapshot", []client.Object{drill("orders-db")}, "POST", "/api/v1/namespaces/shop/restoredrills/orders-db/runs", "good", `{"snapshotName":"nightly-1"}`, 201, `"name":"orders-db-http-`},
		{"run in progress", []client.Object{drill("orders-db"), runOf("r1", "orders-db", drillsv1.PhaseValidating)}, "POST", "/api/v1/namespaces/shop/restoredrills/orders-db/runs", "good", "", 409, "r1 of drill orders-db is still in progress"},
		{"another drill's run does not block", []client.Object{drill("orders-db"), runOf("r1", "users-db", drillsv1.PhaseValidating)}, "POST", "/api/v1/namespaces/shop/restoredrills/orders-db/runs", "good", "", 201, ""},
		{"unknown drill", nil, "POST", "/api/v1/namespaces/shop/restoredrills/nope/runs", "good", "", 404, "no RestoreDrill nope"},
		{"unknown field", []client.Object{drill("orders-db")}, "POST", "/api/v1/namespaces/shop/restoredrills/orders-db/runs", "good", `{"snapshot":"x"}`, 400, "unknown field"},
		{"body too large", []client.Object{drill("orders-db")}, "POST", "/api/v1/namespaces/shop/restoredrills/orders-db/runs", "good", strings.Repeat(" ", MaxBodyBytes+1), 413, "larger than"},
		{"get a run", []client.Object{runOf("r1", "orders-db", drillsv1.PhaseDone)}, "GET", "/api/v1/namespaces/shop/drillruns/r1", "good", "", 200, `"kind":"DrillRun"`},
		{"get a missing run", nil, "GET", "/api/v1/namespaces/shop/drillruns/r9", "good", "", 404, "no DrillRun r9"},
		{"unknown endpoint", nil, "GET", "/api/v1/whatever", "good", "", 404, "no such endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTestServer(t, tt.objs...)
			req := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			rec := httptest.NewRecorder()
			srv.Handler().ServeHTTP(rec, req)
			if rec.Code != tt.want || !strings.Contains(rec.Body.String(), tt.wantText) {
				t.Errorf("%s %s: %d %s, want %d containing %q", tt.method, tt.path, rec.Code, rec.Body.String(), tt.want, tt.wantText)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if tt.want == http.StatusCreated && !strings.HasPrefix(rec.Header().Get("Location"), "/api/v1/namespaces/shop/drillruns/orders-db-http-") {
				t.Errorf("Location %q", rec.Header().Get("Location"))
			}
		})
	}
}
