package apigate

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

func TestParse(t *testing.T) {
	tests := []struct {
		method, path string
		want         Request
	}{
		{"GET", "/api/v1/namespaces", Request{Verb: "list", Resource: "namespaces"}},
		{"GET", "/api/v1/namespaces/shop", Request{Verb: "get", Resource: "namespaces", Name: "shop"}},
		{"PUT", "/api/v1/namespaces/shop/finalize", Request{Verb: "update", Resource: "namespaces", Name: "shop", Subresource: "finalize"}},
		{"DELETE", "/api/v1/namespaces/shop/pods/db", Request{Verb: "delete", Namespace: "shop", Resource: "pods", Name: "db"}},
		{"DELETE", "/api/v1/namespaces/shop/pods", Request{Verb: "deletecollection", Namespace: "shop", Resource: "pods"}},
		{"GET", "/api/v1/namespaces/shop/pods?watch=true", Request{Verb: "watch", Namespace: "shop", Resource: "pods"}},
		{"GET", "/api/v1/persistentvolumes/pv-1", Request{Verb: "get", Resource: "persistentvolumes", Name: "pv-1"}},
		{"POST", "/apis/drills.drillerd.dev/v1alpha1/namespaces/shop/drillruns", Request{Verb: "create", Group: "drills.drillerd.dev", Namespace: "shop", Resource: "drillruns"}},
		{"PUT", "/apis/drills.drillerd.dev/v1alpha1/namespaces/shop/drillruns/r-1/status", Request{Verb: "update", Group: "drills.drillerd.dev", Namespace: "shop", Resource: "drillruns", Name: "r-1", Subresource: "status"}},
		{"PATCH", "/apis/snapshot.storage.k8s.io/v1/volumesnapshotcontents/c-1", Request{Verb: "patch", Group: "snapshot.storage.k8s.io", Resource: "volumesnapshotcontents", Name: "c-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			got := parse(httptest.NewRequest(tt.method, tt.path, nil))
			if got.String() != tt.want.String() || got.Group != tt.want.Group {
				t.Errorf("parse = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestStatusPhase(t *testing.T) {
	tests := []struct {
		name string
		req  Request
		want string
	}{
		{"status update", Request{Subresource: "status", Body: []byte(`{"status":{"phase":"Validating"}}`)}, "Validating"},
		{"not the status", Request{Body: []byte(`{"status":{"phase":"Validating"}}`)}, ""},
		{"no JSON", Request{Subresource: "status", Body: []byte{0x6b, 0x38, 0x73}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.req.StatusPhase(); got != tt.want {
				t.Errorf("StatusPhase() = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestHolds: a request held before the server never reaches it while
// held; one held after the server has been done; both go on when
// released, and other requests pass meanwhile.
func TestHolds(t *testing.T) {
	var served atomic.Int64
	upstream := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		io.WriteString(w, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization"))
	}))
	defer upstream.Close()
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: upstream.Certificate().Raw})
	g, err := Start(&rest.Config{Host: upstream.URL, TLSClientConfig: rest.TLSClientConfig{CAData: caPEM}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(g.CAData)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	do := func(method, path string) (string, error) {
		req, _ := http.NewRequest(method, g.URL+path, strings.NewReader(`{}`))
		req.Header.Set("Authorization", "Bearer t")
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return string(body), err
	}

	before := g.Hold("before", BeforeServer, func(r Request) bool { return r.Verb == "create" && r.Resource == "pods" })
	after := g.Hold("after", AfterServer, func(r Request) bool { return r.Verb == "delete" && r.Resource == "pods" })
	results := make(chan string, 2)
	go func() { body, _ := do("POST", "/api/v1/namespaces/a/pods"); results <- body }()
	go func() { body, _ := do("DELETE", "/api/v1/namespaces/a/pods/p"); results <- body }()
	for _, h := range []*Hold{before, after} {
		select {
		case <-h.Arrived():
		case <-time.After(5 * time.Second):
			t.Fatalf("hold %s: no request held", h)
		}
	}
	if n := served.Load(); n != 1 {
		t.Errorf("the server saw %d requests while one was held before it and one after, want 1", n)
	}
	if body, err := do("GET", "/api/v1/namespaces/a/pods/p"); err != nil || body != "GET /api/v1/namespaces/a/pods/p Bearer t" {
		t.Errorf("a request no hold matches: %q, %v; want it forwarded with its credentials", body, err)
	}
	if got := before.Held().String(); got != "create pods a/" {
		t.Errorf("held %q", got)
	}
	before.Release()
	after.Release()
	for range 2 {
		select {
		case body := <-results:
			if !strings.HasSuffix(body, "Bearer t") {
				t.Errorf("a released request got %q", body)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a released request did not finish")
		}
	}
	// A hold holds one request only.
	if body, err := do("POST", "/api/v1/namespaces/a/pods"); err != nil || !strings.HasPrefix(body, "POST") {
		t.Errorf("a second matching request: %q, %v; want it forwarded", body, err)
	}
}
