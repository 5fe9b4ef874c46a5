package main

import (
	"context"
	"fmt"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// checkLeaseNamespace makes sure, before serve starts, that the leader
// election Lease can be created in cfg.Namespace, so that a missing
// namespace or a missing Role stops drillerd at once with what to do,
// instead of leader election retrying forever and no drill ever starting.
// It asks the API server to create the Lease in a dry run: a Lease that
// exists already is fine. Other errors (the API server unreachable) are
// logged and left to leader election, which retries them.
func checkLeaseNamespace(ctx context.Context, c kubernetes.Interface, cfg ServeConfig, log logr.Logger) error {
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: cfg.Namespace, Name: cfg.LeaderElectionID}}
	_, err := c.CoordinationV1().Leases(cfg.Namespace).Create(ctx, lease, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	switch {
	case err == nil, apierrors.IsAlreadyExists(err):
		return nil
	case apierrors.IsNotFound(err):
		return fmt.Errorf("--namespace=%s: namespace %s does not exist, and drillerd's leader election Lease %s lives there: "+
			"create it (kubectl create namespace %s), or start drillerd with --namespace naming the namespace it runs in, "+
			"or, when exactly one drillerd runs, with --leader-elect=false", cfg.Namespace, cfg.Namespace, cfg.LeaderElectionID, cfg.Namespace)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("--namespace=%s: drillerd may not create its leader election Lease %s there (%v): "+
			"bind the Role drillerd-leader-election of deploy/install/rbac.yaml to drillerd's ServiceAccount in %s, "+
			"or, when exactly one drillerd runs, start it with --leader-elect=false", cfg.Namespace, cfg.LeaderElectionID, err, cfg.Namespace)
	}
	log.Info("cannot tell yet whether the leader election Lease can be created; leader election will retry", "lease", cfg.Namespace+"/"+cfg.LeaderElectionID, "error", err.Error())
	return nil
}
