package server

import (
	"context"
	"net"
	"net/http"
	"runtime"
	"testing"
)

func TestTheAPIIsReadyOnlyWhileItsListenerServes(t *testing.T) {
	srv := newTestServer(t)
	srv.Addr = "127.0.0.1:0"
	if err := srv.Serving(nil); err == nil {
		t.Fatal("ready before Start bound the listener")
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	for srv.Serving(nil) != nil {
		runtime.Gosched()
		select {
		case err := <-done:
			t.Fatalf("Start returned before serving: %v", err)
		default:
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := srv.Serving(nil); err == nil {
		t.Error("still ready after shutdown")
	}
}

func TestTheAPIAnswersOnceReady(t *testing.T) {
	// Bind an address, free it, and serve the API there: whenever Serving
	// says ready, a request is answered.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	srv := newTestServer(t)
	srv.Addr = addr
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go func() { _ = srv.Start(ctx) }()
	for srv.Serving(nil) != nil {
		runtime.Gosched()
	}
	resp, err := http.Get("http://" + addr + "/api/v1/namespaces/shop/drillruns/r1")
	if err != nil {
		t.Fatalf("ready, but the API refused a request: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("status %d, want 401 (no token)", resp.StatusCode)
	}
}

func TestAcceptingConnectsToTheListener(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	for _, bind := range []string{l.Addr().String(), ":" + port, "0.0.0.0:" + port} {
		if err := Accepting(bind)(nil); err != nil {
			t.Errorf("Accepting(%q) with a listener there: %v", bind, err)
		}
	}
	l.Close()
	if err := Accepting(":" + port)(nil); err == nil {
		t.Errorf("Accepting(%q) is nil with the listener closed", ":"+port)
	}
}

func TestDialAddress(t *testing.T) {
	tests := []struct{ bind, want string }{
		{":8080", "127.0.0.1:8080"},
		{"0.0.0.0:8080", "127.0.0.1:8080"},
		{"[::]:8080", "[::1]:8080"},
		{"10.0.0.7:8080", "10.0.0.7:8080"},
		{"localhost:8080", "localhost:8080"},
	}
	for _, tt := range tests {
		if got := dialAddress(tt.bind); got != tt.want {
			t.Errorf("dialAddress(%q) = %q, want %q", tt.bind, got, tt.want)
		}
	}
}
