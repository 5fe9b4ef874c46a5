package drill

import (
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/restore"
	"github.com/drillerd/drillerd/internal/runcert"
	"github.com/drillerd/drillerd/internal/validate"
	"github.com/drillerd/drillerd/internal/verdict"
)

// accessStore holds the Access of every run this process provisioned and
// has not ended: the client key of a run's certificates lives here and
// nowhere else, not in status, a Secret or a log. With it, the database
// login of a run in auth.mode Secret, once read.
type accessStore struct {
	mu   sync.Mutex
	runs map[types.NamespacedName]runAccess
}

type runAccess struct {
	uid    types.UID
	access restore.Access
	// login is the database login auth.mode Secret named, read once per
	// run: the readiness checks connect many times.
	login *login
	// claim is the restored claim Provisioning planned, created once the
	// sandbox's VolumeSnapshot is ready; claimMade says it was.
	claim     *corev1.PersistentVolumeClaim
	claimMade bool
}

// login is a database user and password.
type login struct{ user, password string }

// get returns run's Access, if this process made one for this run.
func (s *accessStore) get(run *drillsv1.DrillRun) (restore.Access, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.runs[types.NamespacedName{Namespace: run.Namespace, Name: run.Name}]
	if !ok || a.uid != run.UID {
		return restore.Access{}, false
	}
	return a.access, true
}

func (s *accessStore) put(run *drillsv1.DrillRun, a restore.Access) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.runs == nil {
		s.runs = map[types.NamespacedName]runAccess{}
	}
	s.runs[types.NamespacedName{Namespace: run.Namespace, Name: run.Name}] = runAccess{uid: run.UID, access: a}
}

// login returns the login remembered for run, if any.
func (s *accessStore) login(run *drillsv1.DrillRun) (login, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.runs[types.NamespacedName{Namespace: run.Namespace, Name: run.Name}]
	if !ok || a.uid != run.UID || a.login == nil {
		return login{}, false
	}
	return *a.login, true
}

// rememberLogin keeps l for run while its Access is held.
func (s *accessStore) rememberLogin(run *drillsv1.DrillRun, l login) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := types.NamespacedName{Namespace: run.Namespace, Name: run.Name}
	if a, ok := s.runs[key]; ok && a.uid == run.UID {
		a.login = &l
		s.runs[key] = a
	}
}

// planClaim keeps claim as the restored claim to create for run.
func (s *accessStore) planClaim(run *drillsv1.DrillRun, claim *corev1.PersistentVolumeClaim) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := types.NamespacedName{Namespace: run.Namespace, Name: run.Name}
	if a, ok := s.runs[key]; ok && a.uid == run.UID {
		a.claim, a.claimMade = claim, false
		s.runs[key] = a
	}
}

// plannedClaim returns the restored claim planned for run and whether it
// was created; ok is false when this process planned none.
func (s *accessStore) plannedClaim(run *drillsv1.DrillRun) (claim *corev1.PersistentVolumeClaim, made, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, found := s.runs[types.NamespacedName{Namespace: run.Namespace, Name: run.Name}]
	if !found || a.uid != run.UID || a.claim == nil {
		return nil, false, false
	}
	return a.claim.DeepCopy(), a.claimMade, true
}

// claimCreated records that run's planned claim was created.
func (s *accessStore) claimCreated(run *drillsv1.DrillRun) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := types.NamespacedName{Namespace: run.Namespace, Name: run.Name}
	if a, ok := s.runs[key]; ok && a.uid == run.UID {
		a.claimMade = true
		s.runs[key] = a
	}
}

// forget drops the Access of the run named key: it ended, or is gone.
func (s *accessStore) forget(key types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.runs, key)
}

// issueAccess makes a run's Access: its certificates, valid until a little
// after the run's deadline, and the name of its check role.
func (r *Reconciler) issueAccess(w *work) (restore.Access, error) {
	deadline := w.now.Add(totalTimeout(w.drill))
	if d := w.run.Status.Deadline; d != nil {
		deadline = d.Time
	}
	certs, err := runcert.Issue(w.sandbox.CertificateRequest(w.now, deadline))
	if err != nil {
		return restore.Access{}, fmt.Errorf("while making the run's certificates: %w", err)
	}
	return restore.Access{Certificates: certs, CheckRole: validate.NewReaderRole()}, nil
}

// accessLost is the verdict of a run whose sandbox this process did not
// make: the client key that opens it went with the process that did.
// Start-up recovery ends such runs first; this catches one it missed.
func accessLost(phase drillsv1.Phase) verdict.Verdict {
	return verdict.Errored(verdict.ReasonInterrupted, "drillerd restarted during the run (in phase %s): the run's client key, kept only in the memory of the process that made the sandbox, is gone, so no one can connect to the sandbox's database", phase)
}
