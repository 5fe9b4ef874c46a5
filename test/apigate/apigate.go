// Package apigate is a gate on the way from one client to the API server: a
// TLS reverse proxy that forwards every request unchanged, the client's own
// credentials included (the audit log still names the client), and can
// hold a chosen request, before the API server sees it or after the API
// server has answered it, until the test releases it or the client goes
// away.
//
// End-to-end tests use it to stop drillerd at an exact point of a drill:
// inside a step (a request held before the API server sees it), or just
// after a status write was committed (its answer held). Nothing is
// emulated: every request that passes reaches the real API server.
package apigate

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Request is what a hold matches on: a request as the API server's
// authorizer sees it, and the body of a write.
type Request struct {
	// Verb is get, list, watch, create, update, patch, delete or
	// deletecollection.
	Verb                                          string
	Group, Resource, Subresource, Namespace, Name string
	// Body is the body of a create, update or patch.
	Body []byte
}

func (r Request) String() string {
	what := r.Resource
	if r.Subresource != "" {
		what += "/" + r.Subresource
	}
	if r.Group != "" {
		what += "." + r.Group
	}
	return fmt.Sprintf("%s %s %s/%s", r.Verb, what, r.Namespace, r.Name)
}

// When says where a request is held.
type When int

const (
	// BeforeServer holds the request before the API server sees it.
	BeforeServer When = iota
	// AfterServer lets the API server do the request and holds its answer.
	AfterServer
)

// Hold is one armed hold: the first request it matches is held.
type Hold struct {
	name    string
	when    When
	match   func(Request) bool
	arrived chan struct{}
	release chan struct{}
	once    sync.Once
	held    Request
}

// Arrived is closed once a request is held.
func (h *Hold) Arrived() <-chan struct{} { return h.arrived }

// Held is the request held (after Arrived).
func (h *Hold) Held() Request { return h.held }

// Release lets the held request (or one that comes later) go on.
func (h *Hold) Release() {
	select {
	case <-h.release:
	default:
		close(h.release)
	}
}

func (h *Hold) String() string { return h.name }

// wait holds a request until the hold is released or the client is gone.
func (h *Hold) wait(ctx context.Context, req Request) error {
	h.once.Do(func() {
		h.held = req
		close(h.arrived)
	})
	select {
	case <-h.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Gate is a running gate.
type Gate struct {
	// URL is where clients reach the gate.
	URL string
	// CAData is the PEM certificate clients verify the gate with.
	CAData []byte

	mu    sync.Mutex
	holds []*Hold
	srv   *http.Server
}

type holdKey struct{}

// maxBody bounds the bodies the gate reads to match on.
const maxBody = 16 << 20

// Start serves a gate in front of the API server of upstream (whose CA it
// trusts; its credentials are not used).
func Start(upstream *rest.Config) (*Gate, error) {
	target, err := url.Parse(upstream.Host)
	if err != nil {
		return nil, fmt.Errorf("apigate: the API server's address %q: %w", upstream.Host, err)
	}
	tlsUp, err := rest.TLSConfigFor(&rest.Config{TLSClientConfig: rest.TLSClientConfig{
		CAFile: upstream.CAFile, CAData: upstream.CAData, ServerName: upstream.ServerName,
	}})
	if err != nil {
		return nil, err
	}
	cert, caPEM, err := servingCertificate()
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	g := &Gate{URL: "https://" + l.Addr().String(), CAData: caPEM}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = target.Host
		},
		Transport:     &http.Transport{TLSClientConfig: tlsUp, ForceAttemptHTTP2: true, Proxy: nil},
		FlushInterval: -1, // watches stream
		ModifyResponse: func(resp *http.Response) error {
			h, _ := resp.Request.Context().Value(holdKey{}).(*Hold)
			if h == nil {
				return nil
			}
			req, _ := resp.Request.Context().Value(requestKey{}).(Request)
			return h.wait(resp.Request.Context(), req)
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return // the client is gone
			}
			http.Error(w, "apigate: "+err.Error(), http.StatusBadGateway)
		},
	}
	g.srv = &http.Server{
		Handler:           g.handler(proxy),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}},
		ReadHeaderTimeout: 30 * time.Second,
	}
	go func() { _ = g.srv.ServeTLS(l, "", "") }()
	return g, nil
}

type requestKey struct{}

func (g *Gate) handler(proxy *httputil.ReverseProxy) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := parse(r)
		if req.Verb == "create" || req.Verb == "update" || req.Verb == "patch" {
			body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
			if err != nil {
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			req.Body = body
		}
		h := g.take(req)
		if h != nil && h.when == BeforeServer {
			if h.wait(r.Context(), req) != nil {
				return // the client is gone: the API server never sees it
			}
		}
		if h != nil && h.when == AfterServer {
			ctx := context.WithValue(context.WithValue(r.Context(), holdKey{}, h), requestKey{}, req)
			r = r.WithContext(ctx)
		}
		proxy.ServeHTTP(w, r)
	})
}

// Hold arms a hold for the first request from now on that match accepts.
// name describes it in messages.
func (g *Gate) Hold(name string, when When, match func(Request) bool) *Hold {
	h := &Hold{name: name, when: when, match: match, arrived: make(chan struct{}), release: make(chan struct{})}
	g.mu.Lock()
	g.holds = append(g.holds, h)
	g.mu.Unlock()
	return h
}

// take disarms and returns the first armed hold that matches req.
func (g *Gate) take(req Request) *Hold {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, h := range g.holds {
		if h.match(req) {
			g.holds = append(g.holds[:i], g.holds[i+1:]...)
			return h
		}
	}
	return nil
}

// Disarm removes every hold that has not held a request yet.
func (g *Gate) Disarm() {
	g.mu.Lock()
	g.holds = nil
	g.mu.Unlock()
}

// Close stops the gate.
func (g *Gate) Close() error { return g.srv.Close() }

// WriteKubeconfig writes a kubeconfig for the gate that authenticates with
// a bearer token.
func (g *Gate) WriteKubeconfig(path, token string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["gate"] = &clientcmdapi.Cluster{Server: g.URL, CertificateAuthorityData: g.CAData}
	cfg.AuthInfos["gate"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["gate"] = &clientcmdapi.Context{Cluster: "gate", AuthInfo: "gate"}
	cfg.CurrentContext = "gate"
	return clientcmd.WriteToFile(*cfg, path)
}

// parse reads the authorizer's view of an API request from its method and
// path: /api/v1/[namespaces/NS/]RESOURCE[/NAME[/SUB]] and
// /apis/GROUP/VERSION/[namespaces/NS/]RESOURCE[/NAME[/SUB]].
func parse(r *http.Request) Request {
	var req Request
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		req.Group, parts = parts[1], parts[3:]
	default:
		parts = nil
	}
	// namespaces/NAME[/status|/finalize] is the namespace itself.
	if len(parts) >= 3 && parts[0] == "namespaces" && !(req.Group == "" && len(parts) == 3 && (parts[2] == "status" || parts[2] == "finalize")) {
		req.Namespace, parts = parts[1], parts[2:]
	}
	if len(parts) > 0 {
		req.Resource = parts[0]
	}
	if len(parts) > 1 {
		req.Name = parts[1]
	}
	if len(parts) > 2 {
		req.Subresource = parts[2]
	}
	switch r.Method {
	case http.MethodGet:
		switch {
		case req.Name != "":
			req.Verb = "get"
		case r.URL.Query().Get("watch") == "true" || r.URL.Query().Get("watch") == "1":
			req.Verb = "watch"
		default:
			req.Verb = "list"
		}
	case http.MethodPost:
		req.Verb = "create"
	case http.MethodPut:
		req.Verb = "update"
	case http.MethodPatch:
		req.Verb = "patch"
	case http.MethodDelete:
		req.Verb = "delete"
		if req.Name == "" {
			req.Verb = "deletecollection"
		}
	default:
		req.Verb = strings.ToLower(r.Method)
	}
	return req
}

// StatusPhase is the phase a status write sets, read from its JSON body;
// empty for another request.
func (r Request) StatusPhase() string {
	if r.Subresource != "status" || len(r.Body) == 0 {
		return ""
	}
	var obj struct {
		Status struct {
			Phase string `json:"phase"`
		} `json:"status"`
	}
	if json.Unmarshal(r.Body, &obj) != nil {
		return ""
	}
	return obj.Status.Phase
}

// servingCertificate makes a self-signed certificate for 127.0.0.1 and
// returns it with its PEM.
func servingCertificate() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "apigate"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		return tls.Certificate{}, nil, errors.Join(errors.New("apigate: serving certificate"), err)
	}
	return cert, certPEM, nil
}
