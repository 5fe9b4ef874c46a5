package server

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
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
		{"a pending run blocks too", []client.Object{newDrill("orders-db").Obj(), newRun("r1", "orders-db").In(drillsv1.PhasePending).Obj()}, "POST", "/api/v1/namespaces/shop/restoredrills/orders-db/runs", "good", "", 409, "r1 of drill orders-db is still in progress"},
		{"a run tearing down with its verdict does not block", []client.Object{newDrill("orders-db").Obj(), newRun("r1", "orders-db").In(drillsv1.PhaseTearingDown).Result(drillsv1.ResultFailed).Obj()}, "POST", "/api/v1/namespaces/shop/restoredrills/orders-db/runs", "good", "", 201, `"drill":"orders-db"`},
		{"another drill's run does not block", []client.Object{newDrill("orders-db").Obj(), newRun("r1", "users-db").In(drillsv1.PhaseValidating).Obj()}, "POST", "/api/v1/namespaces/shop/restoredrills/orders-db/runs", "good", "", 201, ""},
		{"unknown drill", nil, "POST", "/api/v1/namespaces/shop/restoredrills/nope/runs", "good", "", 404, "no RestoreDrill nope"},
		{"unknown field", []client.Object{newDrill("orders-db").Obj()}, "POST", "/api/v1/namespaces/shop/restoredrills/orders-db/runs", "good", `{"snapshot":"x"}`, 400, "unknown field"},
		{"body too large", []client.Object{newDrill("orders-db").Obj()}, "POST", "/api/v1/namespaces/shop/restoredrills/orders-db/runs", "good", strings.Repeat(" ", MaxBodyBytes+1), 413, "larger than"},
		{"get a run", []client.Object{newRun("r1", "orders-db").In(drillsv1.PhaseDone).Obj()}, "GET", "/api/v1/namespaces/shop/drillruns/r1", "good", "", 200, `"kind":"DrillRun"`},
		{"get a missing run", nil, "GET", "/api/v1/namespaces/shop/drillruns/r9", "good", "", 404, "no DrillRun r9"},
		{"unknown endpoint", nil, "GET", "/api/v1/whatever", "good", "", 404, "no such endpoint"},
		{"token for the API server's audience", []client.Object{newDrill("orders-db").Obj()}, "POST", "/api/v1/namespaces/shop/restoredrills/orders-db/runs", "for-apiserver", "", 401, "not valid for audience drillerd (kubectl create token -n NAMESPACE SERVICEACCOUNT --audience drillerd)"},
		{"token for another audience", []client.Object{newDrill("orders-db").Obj()}, "POST", "/api/v1/namespaces/shop/restoredrills/orders-db/runs", "for-ops", "", 401, "not valid for audience drillerd"},
		{"a reviewer that ignores audiences", []client.Object{newDrill("orders-db").Obj()}, "POST", "/api/v1/namespaces/shop/restoredrills/orders-db/runs", audienceUnaware, "", 401, "not for audience drillerd"},
		{"TokenReview unavailable", nil, "GET", "/api/v1/namespaces/shop/drillruns/r1", reviewerDown, "", 503, "cannot review the token now"},
		{"token in the query", nil, "GET", "/api/v1/namespaces/shop/drillruns/r1?token=good", "", "", 400, "tokens in URLs are refused (query parameter \"token\"): send the token in the Authorization header"},
		{"access_token in the query, with a header too", nil, "POST", "/api/v1/namespaces/shop/restoredrills/orders-db/runs?Access_Token=good", "good", "", 400, "tokens in URLs are refused"},
		{"other query parameters are fine", []client.Object{newRun("r1", "orders-db").In(drillsv1.PhaseDone).Obj()}, "GET", "/api/v1/namespaces/shop/drillruns/r1?pretty=1", "good", "", 200, `"kind":"DrillRun"`},
		{"namespace that is not a name", nil, "GET", "/api/v1/namespaces/Shop_1/drillruns/r1", "good", "", 400, `"Shop_1" is not a namespace name`},
		{"run name with an escaped slash", nil, "GET", "/api/v1/namespaces/shop/drillruns/r1%2Fstatus", "good", "", 400, `"r1/status" is not a DrillRun name`},
		{"drill name that is not a name", nil, "POST", "/api/v1/namespaces/shop/restoredrills/orders..db/runs", "good", "", 400, "is not a RestoreDrill name"},
		{"names are checked only once authenticated", nil, "GET", "/api/v1/namespaces/Shop_1/drillruns/r1", "forged", "", 401, "not valid"},
		{"snapshotName that is not a name", []client.Object{newDrill("orders-db").Obj()}, "POST", "/api/v1/namespaces/shop/restoredrills/orders-db/runs", "good", `{"snapshotName":"../nightly"}`, 400, "is not a VolumeSnapshot name"},
		{"data after the body", []client.Object{newDrill("orders-db").Obj()}, "POST", "/api/v1/namespaces/shop/restoredrills/orders-db/runs", "good", `{"snapshotName":"nightly-1"} {}`, 400, "after the JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTestServer(t, tt.objs...)
			req := newRequest(tt.method, tt.path, tt.body)
			if tt.token != "" {
				req.Bearer(tt.token)
			}
			rec := req.serve(srv)
			got := rec.Body.String()
			var answer struct{ Error string }
			if err := json.Unmarshal(rec.Body.Bytes(), &answer); err == nil && answer.Error != "" {
				got = answer.Error
			}
			if rec.Code != tt.want || !strings.Contains(got, tt.wantText) {
				t.Errorf("%s %s: %d %s, want %d containing %q", tt.method, tt.path, rec.Code, rec.Body.String(), tt.want, tt.wantText)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if got := rec.Header().Get("WWW-Authenticate"); (tt.want == http.StatusUnauthorized) != (got != "") {
				t.Errorf("WWW-Authenticate %q with %d", got, rec.Code)
			}
			if tt.want == http.StatusCreated && !strings.HasPrefix(rec.Header().Get("Location"), "/api/v1/namespaces/shop/drillruns/orders-db-http-") {
				t.Errorf("Location %q", rec.Header().Get("Location"))
			}
		})
	}
}

func TestAudiences(t *testing.T) {
	runs := "/api/v1/namespaces/shop/restoredrills/orders-db/runs"
	tests := []struct {
		name      string
		audiences []string
		token     string
		want      int
	}{
		{"default audience, token for drillerd", nil, "good", 201},
		{"default audience, token for the API server", nil, "for-apiserver", 401},
		{"two audiences, token for the second", []string{DefaultAudience, "ops-dashboard"}, "for-ops", 403}, // carol: accepted, no RBAC
		{"two audiences, token for the first", []string{DefaultAudience, "ops-dashboard"}, "good", 201},
		{"the API server's audience configured explicitly", []string{apiServerAudience}, "for-apiserver", 201},
		{"the API server's audience configured, token for drillerd", []string{apiServerAudience}, "good", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTestServer(t, newDrill("orders-db").Obj())
			srv.Audiences = tt.audiences
			if rec := newRequest("POST", runs, "").Bearer(tt.token).serve(srv); rec.Code != tt.want {
				t.Errorf("%d %s, want %d", rec.Code, rec.Body, tt.want)
			}
			want := tt.audiences
			if want == nil {
				want = []string{DefaultAudience}
			}
			if got := reviewedAudiences(srv); !slices.Equal(got, want) {
				t.Errorf("the TokenReview asked for audiences %q, want %q", got, want)
			}
		})
	}
}

func TestParseAudiences(t *testing.T) {
	tests := []struct {
		given   string
		want    []string
		wantErr string
	}{
		{"drillerd", []string{"drillerd"}, ""},
		{"drillerd, ops-dashboard ,https://drillerd.example", []string{"drillerd", "ops-dashboard", "https://drillerd.example"}, ""},
		{"drillerd,drillerd", []string{"drillerd"}, ""},
		{"", nil, `--api-audiences="": name one or more audiences`},
		{"drillerd,", nil, "with no empty one"},
		{" , ", nil, "with no empty one"},
	}
	for _, tt := range tests {
		t.Run(tt.given, func(t *testing.T) {
			got, err := ParseAudiences(tt.given)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("%q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestTwoReplicasAtTheSameInstant: two requests for the same drill, each
// answered by a replica that found no run in progress (neither saw the
// other's run yet), create one run: the API server refuses the second
// name, and that request gets 409.
func TestTwoReplicasAtTheSameInstant(t *testing.T) {
	objs := func() []client.Object {
		return []client.Object{newDrill("orders-db").UID("drill-uid").Obj(), newRun("old", "orders-db").In(drillsv1.PhaseDone).Result(drillsv1.ResultSucceeded).Obj()}
	}
	srv := newTestServer(t, objs()...)
	// Both replicas read the runs before either created one.
	srv.APIReader = newTestServer(t, objs()...).Client
	runs := "/api/v1/namespaces/shop/restoredrills/orders-db/runs"
	first := newRequest("POST", runs, "").Bearer("good").serve(srv)
	second := newRequest("POST", runs, "").Bearer("good").serve(srv)
	if first.Code != http.StatusCreated || second.Code != http.StatusConflict || !strings.Contains(second.Body.String(), "was requested at the same moment") {
		t.Errorf("answers %d %s and %d %s, want 201 and 409", first.Code, first.Body, second.Code, second.Body)
	}
	list := &drillsv1.DrillRunList{}
	if err := srv.Client.List(t.Context(), list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 2 {
		t.Errorf("%d runs, want the old one and one new", len(list.Items))
	}
}

func TestHTTPRunName(t *testing.T) {
	t1 := metav1.NewTime(t0)
	t2 := metav1.NewTime(t0.Add(time.Second))
	run := func(uid string, created metav1.Time) drillsv1.DrillRun {
		return drillsv1.DrillRun{ObjectMeta: metav1.ObjectMeta{UID: types.UID(uid), CreationTimestamp: created}}
	}
	drill := newDrill("orders-db").UID("d1").Obj()
	base := httpRunName(drill, []drillsv1.DrillRun{run("a", t1), run("b", t2)})
	tests := []struct {
		name  string
		drill *drillsv1.RestoreDrill
		runs  []drillsv1.DrillRun
		same  bool
	}{
		{"the same runs, listed in another order", drill, []drillsv1.DrillRun{run("b", t2), run("a", t1)}, true},
		{"an older run gone (history pruned)", drill, []drillsv1.DrillRun{run("b", t2)}, true},
		{"a run created since", drill, []drillsv1.DrillRun{run("a", t1), run("b", t2), run("c", metav1.NewTime(t0.Add(2*time.Second)))}, false},
		{"a run created since, in the same second as the newest", drill, []drillsv1.DrillRun{run("a", t1), run("b", t2), run("c", t2)}, false},
		{"the drill re-created under the same name", newDrill("orders-db").UID("d2").Obj(), []drillsv1.DrillRun{run("a", t1), run("b", t2)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := httpRunName(tt.drill, tt.runs)
			if (got == base) != tt.same {
				t.Errorf("name %s, the first request's %s: want the same %v", got, base, tt.same)
			}
			if !strings.HasPrefix(got, "orders-db-http-") {
				t.Errorf("name %s, want it after the drill", got)
			}
		})
	}
	if first := httpRunName(drill, nil); first == base || !strings.HasPrefix(first, "orders-db-http-") {
		t.Errorf("a drill's first run: %s", first)
	}
}
