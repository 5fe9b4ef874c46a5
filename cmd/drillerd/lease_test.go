package main

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func TestServeRefusesToStartWithoutItsLeaseNamespace(t *testing.T) {
	leases := schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}
	tests := []struct {
		name    string
		answer  error // the API server's answer to the dry-run create
		wantErr []string
	}{
		{"the Lease can be created", nil, nil},
		{"the Lease exists", apierrors.NewAlreadyExists(leases, "drillerd.drills.drillerd.dev"), nil},
		{"the namespace does not exist", apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, "drillerd-system"),
			[]string{"--namespace=drillerd-system: namespace drillerd-system does not exist", "kubectl create namespace drillerd-system", "--leader-elect=false"}},
		{"no Role for the Lease", apierrors.NewForbidden(leases, "", errors.New("no RBAC")),
			[]string{"may not create its leader election Lease drillerd.drills.drillerd.dev", "Role drillerd-leader-election", "--leader-elect=false"}},
		{"the API server is unavailable: leader election retries", apierrors.NewServiceUnavailable("etcd"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fake.NewClientset()
			var dryRun []string
			c.PrependReactor("create", "leases", func(a k8stesting.Action) (bool, runtime.Object, error) {
				dryRun = a.(k8stesting.CreateActionImpl).GetCreateOptions().DryRun
				return true, nil, tt.answer
			})
			cfg := DefaultServeConfig()
			cfg.Namespace = "drillerd-system"
			err := checkLeaseNamespace(context.Background(), c, cfg, logr.Discard())
			if !slices.Equal(dryRun, []string{metav1.DryRunAll}) {
				t.Errorf("the Lease was created with dryRun %v, want a dry run", dryRun)
			}
			if tt.wantErr == nil {
				if err != nil {
					t.Errorf("error %v, want none", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want one saying %q", tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nwants %q", err, w)
				}
			}
		})
	}
}
