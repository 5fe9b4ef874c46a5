package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"os"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"
)

// DefaultCertCheckInterval is how often, at most, the serving certificate's
// files are looked at for a change.
const DefaultCertCheckInterval = 5 * time.Second

// TLSOptions configure the API's listener.
type TLSOptions struct {
	// CertFile and KeyFile are the serving certificate, reloaded when they
	// change; both empty means a self-signed certificate.
	CertFile, KeyFile string
	// MinVersion is tls.VersionTLS12 or tls.VersionTLS13 (ParseTLSVersion);
	// zero means TLS 1.2.
	MinVersion uint16
	// CheckInterval is how often, at most, a handshake looks at the files;
	// zero means DefaultCertCheckInterval.
	CheckInterval time.Duration
	// Clock times the checks; nil is the real clock.
	Clock clock.PassiveClock
	Log   logr.Logger
}

// ParseTLSVersion reads --tls-min-version: 1.2 or 1.3.
func ParseTLSVersion(s string) (uint16, error) {
	switch s {
	case "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("--tls-min-version=%q: use 1.2 or 1.3", s)
}

// TLSConfig serves the certificate of CertFile and KeyFile, re-read when
// they change, or a self-signed certificate for the pod's names when both
// are empty. A certificate that cannot be loaded at start is an error;
// one that cannot be reloaded later is logged and the previous one is
// served until the files are fixed.
func TLSConfig(o TLSOptions) (*tls.Config, error) {
	if o.MinVersion == 0 {
		o.MinVersion = tls.VersionTLS12
	}
	cfg := &tls.Config{MinVersion: o.MinVersion}
	if o.CertFile == "" && o.KeyFile == "" {
		cert, err := selfSigned()
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
		return cfg, nil
	}
	r, err := newCertReloader(o)
	if err != nil {
		return nil, err
	}
	cfg.GetCertificate = r.GetCertificate
	return cfg, nil
}

// certReloader re-reads a certificate and key when either file's
// modification time or size changed, looking at most once per interval,
// during a handshake. Kubernetes updates a mounted Secret by swapping a
// symlink; os.Stat follows it and sees the new files.
type certReloader struct {
	certFile, keyFile string
	interval          time.Duration
	clock             clock.PassiveClock
	log               logr.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	loaded  [2]fileStamp // of the files cert was read from
	checked time.Time
}

type fileStamp struct {
	modTime time.Time
	size    int64
}

func (a fileStamp) same(b fileStamp) bool { return a.modTime.Equal(b.modTime) && a.size == b.size }

func newCertReloader(o TLSOptions) (*certReloader, error) {
	r := &certReloader{certFile: o.CertFile, keyFile: o.KeyFile, interval: o.CheckInterval, clock: o.Clock, log: o.Log}
	if r.interval <= 0 {
		r.interval = DefaultCertCheckInterval
	}
	if r.clock == nil {
		r.clock = clock.RealClock{}
	}
	stamps, err := r.stat()
	if err == nil {
		err = r.load(stamps)
	}
	if err != nil {
		return nil, err
	}
	r.checked = r.clock.Now()
	return r, nil
}

// GetCertificate is the tls.Config hook.
func (r *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := r.clock.Now(); now.Sub(r.checked) >= r.interval {
		r.checked = now
		r.reloadIfChanged()
	}
	return r.cert, nil
}

func (r *certReloader) reloadIfChanged() {
	stamps, err := r.stat()
	if err == nil && stamps[0].same(r.loaded[0]) && stamps[1].same(r.loaded[1]) {
		return
	}
	if err == nil {
		err = r.load(stamps)
	}
	if err != nil {
		r.log.Error(err, "cannot reload the API's serving certificate; serving the previous one", "certFile", r.certFile, "keyFile", r.keyFile)
		return
	}
	notAfter := ""
	if r.cert.Leaf != nil {
		notAfter = r.cert.Leaf.NotAfter.UTC().Format(time.RFC3339)
	}
	r.log.Info("reloaded the API's serving certificate", "certFile", r.certFile, "notAfter", notAfter)
}

// stat is taken before the files are read, so that a change during the
// read shows as a change at the next check.
func (r *certReloader) stat() ([2]fileStamp, error) {
	var stamps [2]fileStamp
	for i, name := range []string{r.certFile, r.keyFile} {
		info, err := os.Stat(name)
		if err != nil {
			return stamps, fmt.Errorf("while reading the API's serving certificate: %w", err)
		}
		stamps[i] = fileStamp{modTime: info.ModTime(), size: info.Size()}
	}
	return stamps, nil
}

func (r *certReloader) load(stamps [2]fileStamp) error {
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("while loading the API's serving certificate %s and key %s: %w", r.certFile, r.keyFile, err)
	}
	r.cert, r.loaded = &cert, stamps
	return nil
}

func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	host, _ := os.Hostname()
	template := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "drillerd"},
		DNSNames:     []string{"drillerd", "localhost", host},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, key.Public(), key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
