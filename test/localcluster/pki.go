package localcluster

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// pki is the cluster's certificate authority and the key material every
// component needs. Everything is written as PEM files under dir.
type pki struct {
	dir    string
	caCert *x509.Certificate
	caKey  crypto.Signer
}

// identity is a client certificate subject: CN becomes the user name,
// O the groups.
type identity struct {
	file   string
	cn     string
	groups []string
}

var (
	adminIdentity      = identity{file: "admin", cn: "localcluster-admin", groups: []string{"system:masters"}}
	controllerIdentity = identity{file: "kube-controller-manager", cn: "system:kube-controller-manager"}
	schedulerIdentity  = identity{file: "kube-scheduler", cn: "system:kube-scheduler"}
	// kubeletClientIdentity is the API server's identity towards kubelets
	// (--kubelet-client-certificate); a ClusterRoleBinding to
	// system:kubelet-api-admin lets it use their API.
	kubeletClientIdentity = identity{file: "apiserver-kubelet-client", cn: "kube-apiserver-kubelet-client"}
)

func (p *pki) path(name string) string { return filepath.Join(p.dir, name) }

// newPKI creates a fresh CA, the API server's serving certificate, the
// kubelet serving certificate of node nodeName, the service-account
// signing key and client certificates for ids.
func newPKI(dir, nodeName string, ids ...identity) (*pki, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("while creating the certificate directory: %w", err)
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTemplate := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "localcluster-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, caKey.Public(), caKey)
	if err != nil {
		return nil, fmt.Errorf("while creating the cluster CA: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	p := &pki{dir: dir, caCert: caCert, caKey: caKey}
	if err := writeCert(p.path("ca.crt"), caDER); err != nil {
		return nil, err
	}
	if err := writeKey(p.path("ca.key"), caKey); err != nil {
		return nil, err
	}

	serving := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP(serviceClusterIP)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if err := p.issue("apiserver", serving); err != nil {
		return nil, err
	}
	if err := p.issueKubeletServing(nodeName); err != nil {
		return nil, err
	}
	if err := p.issueClients(ids...); err != nil {
		return nil, err
	}
	if err := p.issueServiceAccountKey(); err != nil {
		return nil, err
	}
	return p, nil
}

// issueKubeletServing issues the node's kubelet serving certificate
// (kubelet.crt, kubelet.key) for its InternalIP and name, as a kubelet with
// serverTLSBootstrap gets one signed by the cluster CA.
func (p *pki) issueKubeletServing(nodeName string) error {
	return p.issue("kubelet", &x509.Certificate{
		Subject:     pkix.Name{CommonName: "system:node:" + nodeName, Organization: []string{"system:nodes"}},
		DNSNames:    []string{nodeName},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
}

// issueClients issues a client certificate for each identity.
func (p *pki) issueClients(ids ...identity) error {
	for _, id := range ids {
		client := &x509.Certificate{
			Subject:     pkix.Name{CommonName: id.cn, Organization: id.groups},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}
		if err := p.issue(id.file, client); err != nil {
			return err
		}
	}
	return nil
}

// issueServiceAccountKey writes the service-account signing key pair.
func (p *pki) issueServiceAccountKey() error {
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	if err := writeKey(p.path("sa.key"), saKey); err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(saKey.Public())
	if err != nil {
		return err
	}
	return os.WriteFile(p.path("sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600)
}

var serial = big.NewInt(time.Now().UnixNano())

// issue signs template with the CA and writes name.crt and name.key.
func (p *pki) issue(name string, template *x509.Certificate) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial = new(big.Int).Add(serial, big.NewInt(1))
	template.SerialNumber = serial
	template.NotBefore = time.Now().Add(-time.Hour)
	template.NotAfter = time.Now().Add(365 * 24 * time.Hour)
	template.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	der, err := x509.CreateCertificate(rand.Reader, template, p.caCert, key.Public(), p.caKey)
	if err != nil {
		return fmt.Errorf("while issuing the %s certificate: %w", name, err)
	}
	if err := writeCert(p.path(name+".crt"), der); err != nil {
		return err
	}
	return writeKey(p.path(name+".key"), key)
}

func writeCert(path string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
}
