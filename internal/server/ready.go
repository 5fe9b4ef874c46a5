package server

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Serving is a readiness check of the API's listener: nil from the moment
// it is bound and served until shutdown begins. Connections that arrive
// while it is bound wait in the listener's queue, so a Service that sends a
// request once /readyz says ready is answered.
func (s *Server) Serving(*http.Request) error {
	if !s.serving.Load() {
		return errors.New("the API listener is not serving yet")
	}
	return nil
}

// dialTimeout bounds Accepting's connection attempt.
const dialTimeout = time.Second

// Accepting returns a readiness check that is nil while the listener bound
// to addr (a --*-bind-address such as ":8080") accepts TCP connections: it
// connects to it.
func Accepting(addr string) func(*http.Request) error {
	target := dialAddress(addr)
	return func(*http.Request) error {
		conn, err := net.DialTimeout("tcp", target, dialTimeout)
		if err != nil {
			return fmt.Errorf("%s does not accept connections yet: %w", addr, err)
		}
		return conn.Close()
	}
}

// dialAddress is where to connect to reach a listener bound to addr: its
// own host, or loopback for an unspecified one (":8080", "0.0.0.0:8080",
// "[::]:8080").
func dialAddress(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	ip := net.ParseIP(host)
	switch {
	case host == "":
		host = "127.0.0.1"
	case ip != nil && ip.IsUnspecified() && ip.To4() != nil:
		host = "127.0.0.1"
	case ip != nil && ip.IsUnspecified():
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}
