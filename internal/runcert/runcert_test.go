package runcert

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

func issue(t *testing.T, notBefore, notAfter time.Time) *Set {
	t.Helper()
	s, err := Issue(Request{Authority: "drillerd run r1", Server: "db.drill-orders-1", Client: "drillerd-r1", NotBefore: notBefore, NotAfter: notAfter})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func parseCert(t *testing.T, data []byte) *x509.Certificate {
	t.Helper()
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) > 0 {
		t.Fatalf("not one PEM certificate: %q", data)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestIssuedCertificates(t *testing.T) {
	notBefore := time.Now().Add(-5 * time.Minute).Truncate(time.Second)
	notAfter := time.Now().Add(70 * time.Minute).Truncate(time.Second)
	s := issue(t, notBefore, notAfter)
	ca, server, client := parseCert(t, s.CACert), parseCert(t, s.ServerCert), s.client.Leaf

	tests := []struct {
		name      string
		cert      *x509.Certificate
		cn        string
		isCA      bool
		keyUsage  x509.KeyUsage
		extUsage  []x509.ExtKeyUsage
		verifyFor x509.ExtKeyUsage // the usage the chain must verify for
		notFor    x509.ExtKeyUsage // and must not
	}{
		{"authority", ca, "drillerd run r1", true, x509.KeyUsageCertSign, nil, 0, 0},
		{"server", server, "db.drill-orders-1", false, x509.KeyUsageDigitalSignature, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		{"client", client, "drillerd-r1", false, x509.KeyUsageDigitalSignature, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.cert
			if c.Subject.CommonName != tt.cn {
				t.Errorf("CN %q, want %q", c.Subject.CommonName, tt.cn)
			}
			if !c.NotBefore.Equal(notBefore) || !c.NotAfter.Equal(notAfter) {
				t.Errorf("valid %s to %s, want %s to %s", c.NotBefore, c.NotAfter, notBefore, notAfter)
			}
			if c.IsCA != tt.isCA || !c.BasicConstraintsValid {
				t.Errorf("IsCA %v (basic constraints %v), want %v", c.IsCA, c.BasicConstraintsValid, tt.isCA)
			}
			if c.KeyUsage != tt.keyUsage {
				t.Errorf("key usage %v, want %v", c.KeyUsage, tt.keyUsage)
			}
			if len(c.ExtKeyUsage) != len(tt.extUsage) || len(tt.extUsage) > 0 && c.ExtKeyUsage[0] != tt.extUsage[0] {
				t.Errorf("extended key usage %v, want %v", c.ExtKeyUsage, tt.extUsage)
			}
			pub, ok := c.PublicKey.(*ecdsa.PublicKey)
			if !ok || pub.Curve.Params().Name != "P-256" {
				t.Errorf("public key %T, want ECDSA P-256", c.PublicKey)
			}
			if tt.isCA {
				if !c.MaxPathLenZero || c.MaxPathLen != 0 {
					t.Errorf("the authority may sign further authorities (MaxPathLen %d)", c.MaxPathLen)
				}
				return
			}
			if c.Issuer.CommonName != ca.Subject.CommonName {
				t.Errorf("issuer %q, want the run's authority", c.Issuer.CommonName)
			}
			if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{tt.verifyFor}}); err != nil {
				t.Errorf("does not verify against the run's authority for %v: %v", tt.verifyFor, err)
			}
			if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{tt.notFor}}); err == nil {
				t.Errorf("verifies for %v too", tt.notFor)
			}
			other := x509.NewCertPool()
			other.AddCert(parseCert(t, issue(t, notBefore, notAfter).CACert))
			if _, err := c.Verify(x509.VerifyOptions{Roots: other, KeyUsages: []x509.ExtKeyUsage{tt.verifyFor}}); err == nil {
				t.Error("verifies against another run's authority")
			}
		})
	}
	if s.ClientName != "drillerd-r1" {
		t.Errorf("ClientName %q", s.ClientName)
	}
}

// TestTheClientKeyStaysInMemory: what goes to the sandbox's Secret holds
// the server's key and no other, and nothing there is the client's key.
func TestTheClientKeyStaysInMemory(t *testing.T) {
	s := issue(t, time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
	clientKey := s.client.PrivateKey.(*ecdsa.PrivateKey)
	clientDER, err := x509.MarshalPKCS8PrivateKey(clientKey)
	if err != nil {
		t.Fatal(err)
	}
	clientSEC1, err := x509.MarshalECPrivateKey(clientKey)
	if err != nil {
		t.Fatal(err)
	}
	scalar, err := clientKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"CACert": s.CACert, "ServerCert": s.ServerCert, "ServerKey": s.ServerKey} {
		for _, secret := range [][]byte{clientDER, clientSEC1, scalar} {
			if bytes.Contains(data, secret) || bytes.Contains(data, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: secret})) {
				t.Errorf("%s holds the client's private key", name)
			}
		}
	}
	block, _ := pem.Decode(s.ServerKey)
	if block == nil || block.Type != "PRIVATE KEY" {
		t.Fatalf("ServerKey is not a PEM PKCS #8 key: %q", s.ServerKey)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !key.(*ecdsa.PrivateKey).PublicKey.Equal(parseCert(t, s.ServerCert).PublicKey) {
		t.Error("ServerKey is not the server certificate's key")
	}
	if key.(*ecdsa.PrivateKey).Equal(clientKey) {
		t.Error("ServerKey is the client's key")
	}
}

// TestClientTLS connects drillerd's configuration to servers that require
// a client certificate of the run's authority: only the run's own server,
// while its certificates are valid, is accepted, and it accepts the client.
func TestClientTLS(t *testing.T) {
	now := time.Now()
	run := issue(t, now.Add(-time.Minute), now.Add(time.Hour))
	other := issue(t, now.Add(-time.Minute), now.Add(time.Hour))
	expired := issue(t, now.Add(-2*time.Hour), now.Add(-time.Hour))
	tests := []struct {
		name    string
		client  *Set
		server  *Set
		wantErr string
	}{
		{"the run's server", run, run, ""},
		{"another run's server", run, other, "not this run's sandbox certificate"},
		{"expired certificates", expired, expired, "certificate has expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clientErr, serverErr := handshake(t, tt.client.ClientTLS(), serverTLS(t, tt.server))
			if tt.wantErr == "" {
				if clientErr != nil || serverErr != nil {
					t.Fatalf("client: %v; server: %v", clientErr, serverErr)
				}
				return
			}
			if clientErr == nil || !strings.Contains(clientErr.Error(), tt.wantErr) || !errors.Is(clientErr, ErrUntrustedServer) {
				t.Errorf("client error %v, want ErrUntrustedServer saying %q", clientErr, tt.wantErr)
			}
		})
	}
}

// serverTLS is a server with s's certificate that requires a client
// certificate of s's authority, as the sandbox's PostgreSQL does.
func serverTLS(t *testing.T, s *Set) *tls.Config {
	t.Helper()
	cert, err := tls.X509KeyPair(s.ServerCert, s.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.CACert) {
		t.Fatal("CACert holds no certificate")
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
}

func handshake(t *testing.T, client, server *tls.Config) (clientErr, serverErr error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan error, 1)
	go func() {
		b, err := l.Accept()
		if err != nil {
			done <- err
			return
		}
		c := tls.Server(b, server)
		err = c.Handshake()
		if err == nil {
			_, err = c.Write([]byte{1}) // completes TLS 1.3's client authentication
		}
		c.Close()
		done <- err
	}()
	a, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := tls.Client(a, client)
	clientErr = c.Handshake()
	if clientErr == nil {
		_, clientErr = c.Read(make([]byte, 1))
	}
	c.Close()
	return clientErr, <-done
}
