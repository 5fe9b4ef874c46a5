package server

import (
	"testing"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/builder"
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

// newDrill starts a RestoreDrill in shop.
func newDrill(name string) *builder.DrillBuilder { return builder.ForDrill("shop", name) }

// newRun starts a run of drillName in shop.
func newRun(name, drillName string) *builder.RunBuilder {
	return builder.ForRun("shop", name).Of(drillName)
}
