package restore

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/runcert"
)

// Names and places of what admits drillerd to the sandbox's database.
const (
	// TLSSecretName holds the server's certificate and key and the run's
	// authority: what the database needs, never drillerd's client key.
	TLSSecretName = "sandbox-tls"
	// Keys of the TLS Secret (the kubernetes.io/tls type's, and ca.crt).
	TLSCertKey = corev1.TLSCertKey
	TLSKeyKey  = corev1.TLSPrivateKeyKey
	TLSCAKey   = "ca.crt"
	// IdentMap is the pg_ident.conf map of the client certificate's name to
	// the roles drillerd logs in as.
	IdentMap = "drillerd"
	// DatabaseGroup is the database pod's fsGroup: the kubelet gives the
	// files of the TLS Secret this group and the container's processes this
	// supplementary group, so the server can read a key file owned by root
	// with mode 0640, which PostgreSQL accepts for a key (it refuses a key
	// anyone else may read). 999 is the official image's postgres group;
	// any group would do.
	DatabaseGroup int64 = 999
	// tlsFileMode is the TLS Secret's files' mode (with fsGroup the kubelet
	// adds group read to it, no more).
	tlsFileMode int32 = 0o640

	configMountPath = "/etc/drillerd/hba"
	tlsMountPath    = "/etc/drillerd/tls"
)

// certificateSkew is how much earlier than the run's start and later than
// its deadline the run's certificates are valid, for clocks that differ
// between drillerd and the database's node.
const certificateSkew = 5 * time.Minute

// Access is what admits drillerd, and nobody else, to the sandbox's
// database over the network during one run.
type Access struct {
	// Certificates are the run's: the server's key and certificate and the
	// authority's certificate go into the TLS Secret; the client's key
	// stays in drillerd's memory.
	Certificates *runcert.Set
	// CheckRole is the read-only role drillerd creates in the copy for the
	// drill's own SQL; in mode Trust the client certificate logs in as it
	// too.
	CheckRole string
}

// CertificateRequest names the run's certificates and bounds their
// validity: from a little before now until a little after the run's
// deadline.
func (s Sandbox) CertificateRequest(now, deadline time.Time) runcert.Request {
	return runcert.Request{
		Authority: fmt.Sprintf("drillerd run %s/%s %s", s.Run.Namespace, s.Run.Name, s.Run.UID),
		Server:    DatabasePodName + "." + s.NamespaceName(),
		Client:    ClientName(string(s.Run.UID)),
		NotBefore: now.Add(-certificateSkew),
		NotAfter:  deadline.Add(certificateSkew),
	}
}

// ClientName is the common name of drillerd's client certificate for a
// run.
func ClientName(runUID string) string { return "drillerd-run-" + runUID }

// TLSSecret holds what the database pod needs to serve TLS and check
// drillerd's client certificate. It is immutable: nobody can swap the
// authority of a running sandbox.
func (s Sandbox) TLSSecret(a Access) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: s.meta(TLSSecretName),
		Type:       corev1.SecretTypeTLS,
		Immutable:  ptr.To(true),
		Data: map[string][]byte{
			TLSCertKey: a.Certificates.ServerCert,
			TLSKeyKey:  a.Certificates.ServerKey,
			TLSCAKey:   a.Certificates.CACert,
		},
	}
}

// HBAConfigMap holds the sandbox's pg_hba.conf and pg_ident.conf, which
// replace whatever the restored data directory says. The local socket,
// inside the pod only, is trusted. Over the network only TLS is admitted:
// in mode Trust only drillerd's client certificate of this run, as the
// drill's user or the check role (pg_ident.conf); in mode Secret any role
// with its password (md5 also accepts SCRAM-hashed passwords): the drill's
// credentials and the check role's. Everything else is rejected.
func (s Sandbox) HBAConfigMap(a Access) *corev1.ConfigMap {
	network := "hostssl all all all cert map=" + IdentMap
	if s.Drill.Spec.Database.Auth.Mode == drillsv1.AuthSecret {
		network = "hostssl all all all md5"
	}
	hba := fmt.Sprintf("# drillerd sandbox of run %s/%s\nlocal all all trust\n%s\nhost all all all reject\n", s.Run.Namespace, s.Run.Name, network)
	ident := fmt.Sprintf("# drillerd's client certificate of run %s/%s logs in as these roles only\n", s.Run.Namespace, s.Run.Name)
	if s.Drill.Spec.Database.Auth.Mode != drillsv1.AuthSecret {
		user := s.Drill.Spec.Database.Auth.User
		if user == "" {
			user = "postgres"
		}
		for _, role := range []string{user, a.CheckRole} {
			ident += fmt.Sprintf("%s %s %s\n", IdentMap, identToken(ClientName(string(s.Run.UID))), identToken(role))
		}
	}
	return &corev1.ConfigMap{
		ObjectMeta: s.meta(HBAConfigMapName),
		Data:       map[string]string{"pg_hba.conf": hba, "pg_ident.conf": ident},
	}
}

// identToken quotes a name for pg_ident.conf: quoted, it is taken
// literally (no regular expression, keyword or group), and a double quote
// inside is doubled.
func identToken(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}
