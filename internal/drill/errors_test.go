package drill

import (
	"context"
	"errors"
	"fmt"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestPermanent(t *testing.T) {
	pods := schema.GroupResource{Resource: "pods"}
	quota := apierrors.NewForbidden(pods, "db", errors.New(`exceeded quota: sandbox, requested: pods=1, used: pods=1, limited: pods=1`))
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"quota exceeded, wrapped twice", fmt.Errorf("in phase Provisioning: %w", fmt.Errorf("while creating sandbox pod db: %w", quota)), true},
		{"RBAC forbidden", fmt.Errorf("while creating sandbox namespace: %w", apierrors.NewForbidden(schema.GroupResource{Resource: "namespaces"}, "drill-x", errors.New("no RBAC"))), true},
		{"admission refused the object", fmt.Errorf("while creating: %w", apierrors.NewInvalid(schema.GroupKind{Kind: "Pod"}, "db", nil)), true},
		{"sandbox object of another run", fmt.Errorf("%w: data", errSandboxTaken), true},
		{"conflict", fmt.Errorf("while writing status: %w", apierrors.NewConflict(pods, "db", errors.New("changed"))), false},
		{"API server unavailable", fmt.Errorf("while listing: %w", apierrors.NewServiceUnavailable("etcd leader change")), false},
		{"server timeout", apierrors.NewServerTimeout(pods, "create", 2), false},
		{"too many requests", apierrors.NewTooManyRequests("slow down", 1), false},
		{"not found is decided by the step, not here", apierrors.NewNotFound(pods, "db"), false},
		{"context deadline", fmt.Errorf("while reading: %w", context.DeadlineExceeded), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := permanent(tt.err); got != tt.want {
				t.Errorf("permanent(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
