// Package runcert makes the certificates of one drill run: a certificate
// authority of the run's own, a server certificate for the sandbox's
// database and a client certificate for drillerd.
//
// # Design: who holds what
//
// The sandbox's database admits network connections only with a client
// certificate of the run's authority (pg_hba.conf "cert"). The authority's
// private key signs the two certificates and is then dropped: nothing can
// sign another certificate for the run. The server's key and certificate
// and the authority's certificate go into a Secret in the sandbox namespace
// for the database pod to mount; the client's private key stays in the
// memory of the drillerd process that made it and is never written
// anywhere, so a restarted drillerd cannot reach the sandbox of a run it did
// not start (such a run ends Interrupted anyway). Every certificate expires
// shortly after the run's timeouts.total.
//
// drillerd does not know the database pod's address when it makes the
// server certificate, so it checks the server by the certificate itself
// rather than by name: the server must present exactly the run's server
// certificate, which must verify against the run's authority for server
// authentication.
package runcert

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// Request says what to issue.
type Request struct {
	// Authority is the common name of the run's certificate authority.
	Authority string
	// Server is the common name of the database server's certificate.
	Server string
	// Client is the common name of drillerd's client certificate: the
	// name the sandbox's pg_ident.conf maps to database roles.
	Client string
	// NotBefore and NotAfter bound every certificate's validity.
	NotBefore, NotAfter time.Time
}

// Set is a run's certificates. CACert, ServerCert and ServerKey are PEM
// for the sandbox's Secret; the client's private key is not exported.
type Set struct {
	CACert     []byte // the authority's certificate
	ServerCert []byte // the database server's certificate
	ServerKey  []byte // the database server's private key (PKCS #8)
	ClientName string // the client certificate's common name

	ca     *x509.Certificate
	server *x509.Certificate
	client tls.Certificate
}

// Issue makes a new authority, signs a server and a client certificate
// with it, and drops the authority's key. Keys are ECDSA P-256.
func Issue(req Request) (*Set, error) {
	if req.Authority == "" || req.Server == "" || req.Client == "" {
		return nil, errors.New("runcert: Authority, Server and Client names are required")
	}
	if !req.NotAfter.After(req.NotBefore) {
		return nil, fmt.Errorf("runcert: NotAfter %s is not after NotBefore %s", req.NotAfter, req.NotBefore)
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("runcert: while generating the authority's key: %w", err)
	}
	caTemplate := &x509.Certificate{
		Subject:               pkix.Name{CommonName: req.Authority},
		NotBefore:             req.NotBefore,
		NotAfter:              req.NotAfter,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	ca, err := sign(caTemplate, caKey, nil, caKey)
	if err != nil {
		return nil, fmt.Errorf("runcert: while making the authority: %w", err)
	}
	serverKey, server, err := leaf(req.Server, x509.ExtKeyUsageServerAuth, req, ca, caKey)
	if err != nil {
		return nil, fmt.Errorf("runcert: while making the server certificate: %w", err)
	}
	clientKey, client, err := leaf(req.Client, x509.ExtKeyUsageClientAuth, req, ca, caKey)
	if err != nil {
		return nil, fmt.Errorf("runcert: while making the client certificate: %w", err)
	}
	serverDER, err := x509.MarshalPKCS8PrivateKey(serverKey)
	if err != nil {
		return nil, fmt.Errorf("runcert: while encoding the server key: %w", err)
	}
	return &Set{
		CACert:     certPEM(ca),
		ServerCert: certPEM(server),
		ServerKey:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: serverDER}),
		ClientName: req.Client,
		ca:         ca,
		server:     server,
		client:     tls.Certificate{Certificate: [][]byte{client.Raw}, PrivateKey: clientKey, Leaf: client},
	}, nil
}

// leaf makes a key and an end-entity certificate for usage, signed by ca.
func leaf(name string, usage x509.ExtKeyUsage, req Request, ca *x509.Certificate, caKey *ecdsa.PrivateKey) (*ecdsa.PrivateKey, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	cert, err := sign(&x509.Certificate{
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             req.NotBefore,
		NotAfter:              req.NotAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{usage},
		BasicConstraintsValid: true,
	}, key, ca, caKey)
	return key, cert, err
}

// sign signs template for key's public half with signer, as issued by
// parent (nil: self-signed).
func sign(template *x509.Certificate, key *ecdsa.PrivateKey, parent *x509.Certificate, signer *ecdsa.PrivateKey) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	template.SerialNumber = serial
	if parent == nil {
		parent = template
	}
	der, err := x509.CreateCertificate(rand.Reader, template, parent, &key.PublicKey, signer)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// ErrUntrustedServer is why ClientTLS refuses a server: it did not present
// the run's server certificate, or that certificate does not verify (it
// expired, say).
var ErrUntrustedServer = errors.New("the database is not this run's sandbox server")

// ClientTLS is the TLS configuration drillerd connects to the sandbox's
// database with: it presents the client certificate and accepts only the
// run's server certificate, verified against the run's authority for
// server authentication at the time of the handshake.
func (s *Set) ClientTLS() *tls.Config {
	roots := x509.NewCertPool()
	roots.AddCert(s.ca)
	server := s.server
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{s.client},
		// The server's address is not known when its certificate is made:
		// VerifyConnection checks the certificate itself instead of a name.
		InsecureSkipVerify: true, //nolint:gosec // verified below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return fmt.Errorf("%w: it presented no certificate", ErrUntrustedServer)
			}
			got := cs.PeerCertificates[0]
			if !bytes.Equal(got.Raw, server.Raw) {
				return fmt.Errorf("%w: it presented the certificate of %q, not this run's sandbox certificate", ErrUntrustedServer, got.Subject.CommonName)
			}
			if _, err := got.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
				return fmt.Errorf("%w: the sandbox's certificate does not verify: %w", ErrUntrustedServer, err)
			}
			return nil
		},
	}
}
