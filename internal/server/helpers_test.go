package server

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/builder"
)

// apiServerAudience is what a token minted without --audience is for.
const apiServerAudience = "https://kubernetes.default.svc"

// testTokens are the tokens the fake TokenReview knows, with their user
// and the audiences they were minted for.
var testTokens = map[string]struct {
	user      string
	audiences []string
}{
	"good":          {"alice", []string{DefaultAudience}},
	"nobody":        {"bob", []string{DefaultAudience}},
	"for-apiserver": {"alice", []string{apiServerAudience}},
	"for-ops":       {"carol", []string{"ops-dashboard"}},
	"read-only":     {"dave", []string{DefaultAudience}},
}

// Tokens with a behaviour of their own:
const (
	// audienceUnaware is accepted by a reviewer that ignores audiences and
	// answers with none.
	audienceUnaware = "audience-unaware"
	// reviewerDown makes the TokenReview fail.
	reviewerDown = "reviewer-down"
)

// t0 is the fake clock's start.
var t0 = time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)

// newTestServer knows the tokens of testTokens. Like the API server, its
// TokenReview accepts a token only for an audience it was minted for and
// answers with the audiences both name. alice may create, get and list
// drillruns and list restoredrills in shop; dave may only get and list
// them there; bob and carol may do nothing.
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
		case reviewerDown:
			return true, nil, errors.New("the API server is unreachable")
		case audienceUnaware:
			review.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{Username: "alice"}}
			return true, review, nil
		}
		known, ok := testTokens[review.Spec.Token]
		if !ok {
			return true, review, nil
		}
		wanted := review.Spec.Audiences
		if len(wanted) == 0 {
			wanted = []string{apiServerAudience}
		}
		var both []string
		for _, a := range wanted {
			if slices.Contains(known.audiences, a) {
				both = append(both, a)
			}
		}
		if len(both) == 0 {
			review.Status.Error = "token audiences are invalid for the target audiences"
			return true, review, nil
		}
		review.Status = authenticationv1.TokenReviewStatus{Authenticated: true, Audiences: both, User: authenticationv1.UserInfo{Username: known.user}}
		return true, review, nil
	})
	auth.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		sar := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview)
		attr := sar.Spec.ResourceAttributes
		verbs := map[string][]string{"drillruns": {"create", "get", "list"}, "restoredrills": {"list"}}[attr.Resource]
		if sar.Spec.User == "dave" {
			verbs = []string{"get", "list"}
		}
		sar.Status.Allowed = (sar.Spec.User == "alice" || sar.Spec.User == "dave") && attr.Namespace == "shop" && attr.Group == "drills.drillerd.dev" && slices.Contains(verbs, attr.Verb)
		return true, sar, nil
	})
	return &Server{Client: c, APIReader: c, Auth: auth, Log: logr.Discard(), DrillNameField: "spec.drillName", Clock: clocktesting.NewFakeClock(t0)}
}

// fakeClock is the test server's clock.
func fakeClock(s *Server) *clocktesting.FakeClock { return s.Clock.(*clocktesting.FakeClock) }

// tokenReviews counts the TokenReviews the server asked for.
func tokenReviews(s *Server) (n int) {
	for _, a := range s.Auth.(*kubefake.Clientset).Actions() {
		if a.GetVerb() == "create" && a.GetResource().Resource == "tokenreviews" {
			n++
		}
	}
	return n
}

// reviewedAudiences are the audiences of the server's last TokenReview.
func reviewedAudiences(s *Server) []string {
	actions := s.Auth.(*kubefake.Clientset).Actions()
	for i := len(actions) - 1; i >= 0; i-- {
		if review, ok := actions[i].(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview); ok {
			return review.Spec.Audiences
		}
	}
	return nil
}

// request is a fluent builder of test requests.
type request struct {
	r    *http.Request
	body string
}

func newRequest(method, target, body string) *request {
	return &request{httptest.NewRequest(method, target, strings.NewReader(body)), body}
}

// clone is a copy to send again.
func (b *request) clone() *request {
	r := b.r.Clone(b.r.Context())
	r.Body = io.NopCloser(strings.NewReader(b.body))
	return &request{r, b.body}
}

// Bearer sets the Authorization header.
func (b *request) Bearer(token string) *request {
	b.r.Header.Set("Authorization", "Bearer "+token)
	return b
}

// From sets the client's address.
func (b *request) From(remoteAddr string) *request {
	b.r.RemoteAddr = remoteAddr
	return b
}

// Header sets a header.
func (b *request) Header(key, value string) *request {
	b.r.Header.Set(key, value)
	return b
}

// Cookie adds the session cookie.
func (b *request) Cookie(token string) *request {
	b.r.AddCookie(&http.Cookie{Name: tokenCookie, Value: token})
	return b
}

// Form makes the request a urlencoded form.
func (b *request) Form() *request {
	return b.Header("Content-Type", "application/x-www-form-urlencoded")
}

// serve sends the request to s.
func (b *request) serve(s *Server) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, b.r)
	return rec
}

// newDrill starts a RestoreDrill in shop.
func newDrill(name string) *builder.DrillBuilder { return builder.ForDrill("shop", name) }

// newRun starts a run of drillName in shop.
func newRun(name, drillName string) *builder.RunBuilder {
	return builder.ForRun("shop", name).Of(drillName)
}
