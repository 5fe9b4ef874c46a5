package server

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Signing in to the status page
//
// A browser cannot add an Authorization header to a page a person opens,
// and a token in a URL ends up in access logs, proxies and browser history
// (such URLs are refused with 400). So the page takes the token once, from a
// form POSTed to /login, reviews it, and keeps it in a cookie that is
// HttpOnly (no script reads it), Secure (never sent over plain HTTP),
// SameSite=Strict (never sent with a request another site starts), Path=/
// and short-lived (sessionMaxAge); POST /logout removes it. The cookie holds
// the token itself, so every page view is reviewed again and a revoked or
// expired token ends the session at once.
//
// CSRF: only GET / reads the cookie, and it changes nothing; the API reads
// only the Authorization header, which another site cannot make a browser
// send. The two state-changing POSTs, /login and /logout, are refused unless
// their Origin header (or, when a browser sends none, their Referer) is this
// server's own origin: SameSite=Strict alone does not stop another site
// from POSTing its own token to /login (login CSRF) or from signing a viewer
// out.

// tokenCookie carries the token given to the login form.
const tokenCookie = "drillerd_token"

// sessionMaxAge is how long the browser keeps the token cookie.
const sessionMaxAge = 30 * time.Minute

func sessionCookie(token string, maxAge time.Duration) *http.Cookie {
	return &http.Cookie{
		Name: tokenCookie, Value: token, Path: "/", MaxAge: int(maxAge.Seconds()),
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode,
	}
}

// clearedCookie tells the browser to forget the token.
func clearedCookie() *http.Cookie {
	c := sessionCookie("", 0)
	c.MaxAge = -1
	return c
}

// loginForm serves GET /login.
func (s *Server) loginForm(w http.ResponseWriter, r *http.Request) {
	if s.Auth == nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	s.loginPage(w, http.StatusOK, "")
}

// login serves POST /login: a same-origin form with one token, which the
// API server must accept for this API's audience.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if err := sameOrigin(r); err != nil {
		s.loginPage(w, http.StatusForbidden, err.Error())
		return
	}
	if s.Auth == nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		s.loginPage(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the form is larger than %d bytes", MaxBodyBytes))
		return
	}
	token, err := parseLoginForm(r.Header.Get("Content-Type"), body)
	if err != nil {
		s.loginPage(w, http.StatusBadRequest, err.Error())
		return
	}
	user, aerr := s.authenticate(r, token)
	if aerr != nil {
		aerr.headers(w)
		s.loginPage(w, aerr.code, aerr.msg)
		return
	}
	s.Log.Info("signed in to the status page", "user", user.Username, "client", clientKey(r.RemoteAddr))
	http.SetCookie(w, sessionCookie(token, sessionMaxAge))
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// logout serves POST /logout.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if err := sameOrigin(r); err != nil {
		s.loginPage(w, http.StatusForbidden, err.Error())
		return
	}
	http.SetCookie(w, clearedCookie())
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// sameOrigin accepts a state-changing request only when the browser says it
// comes from this server's own pages: its Origin, or without one its
// Referer, must have this server's scheme and host.
func sameOrigin(r *http.Request) error {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	header, source := "Origin", r.Header.Get("Origin")
	if source == "" {
		header, source = "Referer", r.Header.Get("Referer")
	}
	if source == "" {
		return errors.New("refused: a POST here must come from this page (no Origin or Referer header)")
	}
	u, err := url.Parse(source)
	if err != nil || u.Host == "" || !strings.EqualFold(u.Scheme, scheme) || hostPort(u.Host, scheme) != hostPort(r.Host, scheme) {
		return fmt.Errorf("refused: a POST here must come from this page, not from %s %q", header, source)
	}
	return nil
}

// hostPort is host with the scheme's default port made explicit, in lower
// case, for comparing an Origin with the Host header.
func hostPort(host, scheme string) string {
	host = strings.ToLower(host)
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	port := "80"
	if scheme == "https" {
		port = "443"
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), port)
}

// loginPage renders the login form with msg, if any, and code.
func (s *Server) loginPage(w http.ResponseWriter, code int, msg string) {
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="drillerd"`)
	}
	render(w, code, loginPage(loginData{Error: msg, Audience: s.audiences()[0], MaxAge: sessionMaxAge.String()}))
}

type loginData struct {
	Error, Audience, MaxAge string
}

// htmlHeaders are the headers of every HTML answer: the page loads nothing
// from anywhere, runs no script, may not be framed, posts forms only to
// this server, and is not cached.
func htmlHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}
