package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
)

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
		{"no RBAC", []client.Object{newDrill("orders-db").Obj()}, "POST", "/api/v1/namespaces/shop/restoredrills/orders-db/runs", "nobody", "", 403, "bob may not create drillruns"},
		{"RBAC in another namespace only", []client.Object{newDrill("orders-db").Obj()}, "POST", "/api/v1/namespaces/billing/restoredrills/orders-db/runs", "good", "", 403, "namespace billing"},
		{"created", []client.Object{newDrill("orders-db").Obj(), newRun("old", "orders-db").In(drillsv1.PhaseDone).Obj()}, "POST", "/api/v1/namespaces/shop/restoredrills/orders-db/runs", "good", "", 201, `"drill":"orders-db"`},
		{"created with a pinned snapshot", []client.Object{newDrill("orders-db").Obj()}, "POST", "/api/v1/namespaces/shop/restoredrills/orders-db/runs", "good", `{"snapshotName":"nightly-1"}`, 201, `"name":"orders-db-http-`},
		{"run in progress", []client.Object{newDrill("orders-db").Obj(), newRun("r1", "orders-db").In(drillsv1.PhaseValidating).Obj()}, "POST", "/api/v1/namespaces/shop/restoredrills/orders-db/runs", "good", "", 409, "r1 of drill orders-db is still in progress"},
		{"another drill's run does not block", []client.Object{newDrill("orders-db").Obj(), newRun("r1", "users-db").In(drillsv1.PhaseValidating).Obj()}, "POST", "/api/v1/namespaces/shop/restoredrills/orders-db/runs", "good", "", 201, ""},
		{"unknown drill", nil, "POST", "/api/v1/namespaces/shop/restoredrills/nope/runs", "good", "", 404, "no RestoreDrill nope"},
		{"unknown field", []client.Object{newDrill("orders-db").Obj()}, "POST", "/api/v1/namespaces/shop/restoredrills/orders-db/runs", "good", `{"snapshot":"x"}`, 400, "unknown field"},
		{"body too large", []client.Object{newDrill("orders-db").Obj()}, "POST", "/api/v1/namespaces/shop/restoredrills/orders-db/runs", "good", strings.Repeat(" ", MaxBodyBytes+1), 413, "larger than"},
		{"get a run", []client.Object{newRun("r1", "orders-db").In(drillsv1.PhaseDone).Obj()}, "GET", "/api/v1/namespaces/shop/drillruns/r1", "good", "", 200, `"kind":"DrillRun"`},
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
