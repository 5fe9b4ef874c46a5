package drill_test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/restore"
	"github.com/drillerd/drillerd/internal/runcert"
	"github.com/drillerd/drillerd/test/fixture"
)

// breakIn is one way a pod elsewhere on the network tries to get into a
// sandbox's database, and how PostgreSQL must refuse it.
type breakIn struct {
	name    string
	user    string
	sslmode string
	// password, when set, is sent if the server asks for one.
	password string
	// cert, when set, is presented as a client certificate.
	cert *tls.Certificate
	// wantCode is the SQLSTATE of PostgreSQL's refusal; "" when the
	// server refuses the TLS handshake instead, with wantMessage.
	wantCode, wantMessage string
}

// keptSandboxAdmitsNobody tries to get into the database of a sandbox kept
// after run failed, from this test process: on the local cluster every pod
// reaches every other over loopback, so this is what a pod in another
// namespace could do on a cluster that does not enforce NetworkPolicies.
// The run's client key died with its verdict, so nothing gets in: not
// without TLS, not with TLS and no client certificate or production's
// password, not with a certificate of another authority that names
// drillerd's client, and not even with the sandbox's own server key and
// certificate read from its Secret.
func (p *production) keptSandboxAdmitsNobody(t *testing.T, run *drillsv1.DrillRun) {
	env := p.env
	ns := run.Status.SandboxNamespace
	pod, err := env.Client.CoreV1().Pods(ns).Get(env.Ctx, restore.DatabasePodName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	secret, err := env.Client.CoreV1().Secrets(ns).Get(env.Ctx, restore.TLSSecretName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the sandbox's TLS Secret: %v", err)
	}
	if _, ok := secret.Data["tls.key"]; !ok || len(secret.Data) != 3 {
		t.Errorf("the sandbox's Secret holds %d keys, want tls.crt, tls.key and ca.crt", len(secret.Data))
	}
	serverPair, err := tls.X509KeyPair(secret.Data[restore.TLSCertKey], secret.Data[restore.TLSKeyKey])
	if err != nil {
		t.Fatal(err)
	}
	forged, err := runcert.Issue(runcert.Request{Authority: "an attacker's authority", Server: "db", Client: restore.ClientName(string(run.UID)),
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	forgedClient := forged.ClientTLS().Certificates[0]

	attempts := []breakIn{
		{name: "as the superuser without TLS", user: "postgres", sslmode: "disable",
			wantCode: "28000", wantMessage: `pg_hba.conf rejects connection for host "127.0.0.1", user "postgres"`},
		{name: "as the drill's user without TLS, with production's password", user: fixture.DBUser, sslmode: "disable", password: fixture.DBPassword,
			wantCode: "28000", wantMessage: "no encryption"},
		{name: "over TLS without a client certificate", user: fixture.DBUser, sslmode: "require",
			wantCode: "28000", wantMessage: "connection requires a valid client certificate"},
		{name: "over TLS with production's password", user: fixture.DBUser, sslmode: "require", password: fixture.DBPassword,
			wantCode: "28000", wantMessage: "connection requires a valid client certificate"},
		{name: "with drillerd's client name signed by another authority", user: fixture.DBUser, sslmode: "require", cert: &forgedClient,
			wantMessage: "tls: unknown certificate authority"},
		{name: "with the sandbox's own server key and certificate from its Secret", user: fixture.DBUser, sslmode: "require", cert: &serverPair,
			wantMessage: "tls: unsupported certificate"},
	}
	for _, a := range attempts {
		t.Run(a.name, func(t *testing.T) {
			conn, err := a.connect(t, pod.Status.PodIP)
			if err == nil {
				conn.Close(env.Ctx)
				t.Fatalf("connected to the kept sandbox %s", ns)
			}
			var pg *pgconn.PgError
			switch {
			case a.wantCode != "" && (!errors.As(err, &pg) || pg.Code != a.wantCode || !strings.Contains(pg.Message, a.wantMessage)):
				t.Errorf("refused with %v; want PostgreSQL's SQLSTATE %s saying %q", err, a.wantCode, a.wantMessage)
			case a.wantCode == "" && !strings.Contains(err.Error(), a.wantMessage):
				t.Errorf("refused with %v; want the server to refuse the TLS handshake: %q", err, a.wantMessage)
			default:
				t.Logf("refused: %v", err)
			}
		})
	}
	// Every refusal above came from the kept sandbox's own server.
	if _, err := env.Client.CoreV1().Namespaces().Get(env.Ctx, ns, metav1.GetOptions{}); err != nil {
		t.Fatalf("the kept sandbox was removed while it was tried (keepOnFailure too short for this machine?): %v", err)
	}
}

func (a breakIn) connect(t *testing.T, host string) (*pgx.Conn, error) {
	t.Helper()
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=5432 dbname=%s user=%s sslmode=%s connect_timeout=10",
		host, fixture.DBName, a.user, a.sslmode))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = a.password
	if a.cert != nil {
		// Sent whatever authorities the server names as acceptable, as
		// libpq sends its sslcert.
		cfg.TLSConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return a.cert, nil }
	}
	return pgx.ConnectConfig(t.Context(), cfg)
}

// checksThatReachPastReading: each way out of a read-only check, through a
// real sandbox, is refused by the copy itself, and the run ends Error
// CheckRefused naming every such check: the drill's configuration is at
// fault, not the backup.
func (p *production) checksThatReachPastReading(t *testing.T) {
	escapes := []struct{ name, sql string }{
		{"runs-a-program", "COPY (SELECT 1) TO PROGRAM 'true'"},
		{"reads-a-server-file", "SELECT pg_read_file('/etc/passwd')"},
		{"exports-a-large-object", "SELECT lo_export(0, '/tmp/drillerd-escape')"},
		{"becomes-the-superuser", "SET ROLE " + fixture.DBUser},
		{"reaches-another-server", "SELECT dblink_connect('host=127.0.0.1 dbname=" + fixture.DBName + " user=" + fixture.DBUser + "')"},
	}
	d := p.newDrill("escapes").check("orders-present", "SELECT count(*) FROM orders", drillsv1.Expectation{Min: ptr.To("1000")})
	for _, e := range escapes {
		d.check(e.name, e.sql, drillsv1.Expectation{NotEmpty: true})
	}
	run, code := p.run(t, d)
	if code != 2 || run.Status.Result != drillsv1.ResultError || run.Status.Reason != "CheckRefused" {
		t.Fatalf("exit %d, %s/%s (%s): want exit 2 and Error/CheckRefused", code, run.Status.Result, run.Status.Reason, run.Status.Message)
	}
	for _, e := range escapes {
		if !strings.Contains(run.Status.Message, "check "+e.name+" was refused by the copy") {
			t.Errorf("the verdict %q does not name %s", run.Status.Message, e.name)
		}
	}
	for _, c := range run.Status.Checks {
		switch {
		case c.Name == "orders-present" && !c.Passed:
			t.Errorf("the read check failed as the check role: %+v", c)
		case c.Name != "orders-present" && (c.Passed || c.Reason != "CheckRefused"):
			t.Errorf("check %s: %+v, want refused", c.Name, c)
		}
	}
	if len(run.Status.Checks) != len(escapes)+1 {
		t.Errorf("%d check results, want %d", len(run.Status.Checks), len(escapes)+1)
	}
}
