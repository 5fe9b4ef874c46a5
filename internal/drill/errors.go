package drill

import (
	"errors"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// errSandboxTaken: a sandbox object of the run's name belongs to another run.
var errSandboxTaken = errors.New("sandbox object exists but belongs to another run")

// permanent reports whether retrying err cannot help, so the run ends Error
// at once instead of retrying until timeouts.total: the API server refused
// the request as forbidden (RBAC, an exceeded ResourceQuota, a terminating
// namespace) or invalid (admission), or a sandbox object belongs to
// another run. Everything else (conflicts, timeouts, an unavailable API
// server) is retried.
func permanent(err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, errSandboxTaken):
		return true
	case apierrors.IsForbidden(err), apierrors.IsInvalid(err), apierrors.IsBadRequest(err),
		apierrors.IsMethodNotSupported(err), apierrors.IsRequestEntityTooLargeError(err):
		return true
	}
	return false
}
