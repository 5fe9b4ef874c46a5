package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	clocktesting "k8s.io/utils/clock/testing"
)

// certFiles are a serving certificate and key on disk, as a mounted Secret
// would hold them.
type certFiles struct {
	t                 *testing.T
	dir               string
	certPath, keyPath string
	written           time.Time // modification time of the next write
}

func newCertFiles(t *testing.T) *certFiles {
	dir := t.TempDir()
	return &certFiles{t: t, dir: dir, certPath: filepath.Join(dir, "tls.crt"), keyPath: filepath.Join(dir, "tls.key"), written: t0}
}

// Write puts a new certificate with serial into the files, with a later
// modification time than the previous write.
func (f *certFiles) Write(serial int64) *certFiles {
	f.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "drillerd"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		f.t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		f.t.Fatal(err)
	}
	f.put(f.certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	f.put(f.keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	return f
}

// Corrupt replaces the key with something that is not a key.
func (f *certFiles) Corrupt() *certFiles {
	f.put(f.keyPath, []byte("not a key\n"))
	return f
}

func (f *certFiles) put(path string, data []byte) {
	f.t.Helper()
	f.written = f.written.Add(time.Second)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		f.t.Fatal(err)
	}
	if err := os.Chtimes(path, f.written, f.written); err != nil {
		f.t.Fatal(err)
	}
}

func serialOf(t *testing.T, c *tls.Certificate) int64 {
	t.Helper()
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf.SerialNumber.Int64()
}

func TestCertificateReload(t *testing.T) {
	// step is one change of the files, or none, then a handshake after some time.
	type step struct {
		change     func(*certFiles)
		after      time.Duration
		wantSerial int64
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"unchanged files", []step{{nil, 10 * time.Second, 1}}},
		{"a new certificate is served at the next check", []step{
			{func(f *certFiles) { f.Write(2) }, 0, 1},
			{nil, 4 * time.Second, 1},
			{nil, time.Second, 2},
		}},
		{"checked at most every interval", []step{
			{nil, 5 * time.Second, 1},
			{func(f *certFiles) { f.Write(2) }, 4 * time.Second, 1},
			{nil, time.Second, 2},
		}},
		{"a broken pair keeps the previous certificate until it is fixed", []step{
			{func(f *certFiles) { f.Write(2).Corrupt() }, 5 * time.Second, 1},
			{nil, 5 * time.Second, 1},
			{func(f *certFiles) { f.Write(3) }, 5 * time.Second, 3},
		}},
		{"removed files keep the previous certificate", []step{
			{func(f *certFiles) { _ = os.Remove(f.keyPath) }, 5 * time.Second, 1},
			{func(f *certFiles) { f.Write(2) }, 5 * time.Second, 2},
		}},
		{"rotated twice", []step{
			{func(f *certFiles) { f.Write(2) }, 5 * time.Second, 2},
			{func(f *certFiles) { f.Write(3) }, 5 * time.Second, 3},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := newCertFiles(t).Write(1)
			clk := clocktesting.NewFakeClock(t0)
			cfg, err := TLSConfig(TLSOptions{CertFile: files.certPath, KeyFile: files.keyPath, Clock: clk, Log: logr.Discard()})
			if err != nil {
				t.Fatal(err)
			}
			first, _ := cfg.GetCertificate(nil)
			for i, s := range tt.steps {
				if s.change != nil {
					s.change(files)
				}
				clk.Step(s.after)
				got, err := cfg.GetCertificate(&tls.ClientHelloInfo{})
				if err != nil {
					t.Fatal(err)
				}
				if serial := serialOf(t, got); serial != s.wantSerial {
					t.Errorf("step %d: serving certificate %d, want %d", i, serial, s.wantSerial)
				}
				if s.wantSerial == 1 && got != first {
					t.Errorf("step %d: the unchanged certificate was read again", i)
				}
			}
		})
	}
}

func TestTLSConfigErrors(t *testing.T) {
	files := newCertFiles(t).Write(1)
	if _, err := TLSConfig(TLSOptions{CertFile: files.certPath, KeyFile: filepath.Join(files.dir, "missing.key")}); err == nil || !strings.Contains(err.Error(), "missing.key") {
		t.Errorf("a missing key: %v, want an error naming it", err)
	}
	files.Corrupt()
	if _, err := TLSConfig(TLSOptions{CertFile: files.certPath, KeyFile: files.keyPath}); err == nil || !strings.Contains(err.Error(), "while loading the API's serving certificate") {
		t.Errorf("a broken key: %v", err)
	}
}

func TestParseTLSVersion(t *testing.T) {
	tests := []struct {
		given string
		want  uint16
	}{
		{"1.2", tls.VersionTLS12},
		{"1.3", tls.VersionTLS13},
		{"1.1", 0},
		{"1.0", 0},
		{"", 0},
		{"TLS1.3", 0},
		{"1.4", 0},
		{"13", 0},
	}
	for _, tt := range tests {
		got, err := ParseTLSVersion(tt.given)
		if tt.want == 0 {
			if err == nil || err.Error() != `--tls-min-version="`+tt.given+`": use 1.2 or 1.3` {
				t.Errorf("%q: %v, want the flag's error", tt.given, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%q: %x %v, want %x", tt.given, got, err, tt.want)
		}
	}
}

// TestTLSHandshake serves real handshakes: the reloaded certificate
// reaches clients, and a client below the minimum version is refused.
func TestTLSHandshake(t *testing.T) {
	files := newCertFiles(t).Write(1)
	clk := clocktesting.NewFakeClock(t0)
	cfg, err := TLSConfig(TLSOptions{CertFile: files.certPath, KeyFile: files.keyPath, MinVersion: tls.VersionTLS13, Clock: clk, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	handshake := func(maxVersion uint16) (int64, error) {
		c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{InsecureSkipVerify: true, MaxVersion: maxVersion})
		if err != nil {
			return 0, err
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64(), nil
	}
	if serial, err := handshake(0); err != nil || serial != 1 {
		t.Errorf("first handshake: certificate %d, %v; want 1", serial, err)
	}
	files.Write(2)
	clk.Step(DefaultCertCheckInterval)
	if serial, err := handshake(0); err != nil || serial != 2 {
		t.Errorf("after the files changed: certificate %d, %v; want 2", serial, err)
	}
	if _, err := handshake(tls.VersionTLS12); err == nil {
		t.Error("a TLS 1.2 client was served with --tls-min-version=1.3")
	}
}

func TestSelfSignedTLSConfig(t *testing.T) {
	cfg, err := TLSConfig(TLSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS12 || len(cfg.Certificates) != 1 || cfg.GetCertificate != nil {
		t.Errorf("self-signed: min version %x, %d certificates", cfg.MinVersion, len(cfg.Certificates))
	}
}
