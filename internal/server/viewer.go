package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"

	authenticationv1 "k8s.io/api/authentication/v1"
)

// viewer is who looks at the status page: the user and the token that
// proved it (from the Authorization header or the session cookie; "" with
// --auth=none).
type viewer struct {
	user  authenticationv1.UserInfo
	token string
}

// identify authenticates the viewer of a page: the Authorization header,
// else the cookie the login form set (login.go). Without either, or with a
// token that is not accepted, it writes the login form (clearing a cookie
// whose token is no longer accepted) and reports false.
func (s *Server) identify(w http.ResponseWriter, r *http.Request) (viewer, bool) {
	if s.Auth == nil {
		return viewer{user: authenticationv1.UserInfo{Username: "anonymous"}}, true
	}
	token, fromHeader := bearerToken(r)
	fromCookie := false
	if c, err := r.Cookie(tokenCookie); !fromHeader && err == nil && c.Value != "" {
		token, fromCookie = c.Value, true
	}
	if token == "" {
		s.loginPage(w, http.StatusUnauthorized, "")
		return viewer{}, false
	}
	u, aerr := s.authenticate(r, token)
	if aerr != nil {
		aerr.headers(w)
		msg := aerr.msg
		if fromCookie && aerr.code == http.StatusUnauthorized {
			http.SetCookie(w, clearedCookie())
			msg = "the token you signed in with is no longer accepted (" + msg + "); sign in again"
		}
		s.loginPage(w, aerr.code, msg)
		return viewer{}, false
	}
	return viewer{user: u, token: token}, true
}

// access answers, for one viewer and one request, whether they may do
// something with drillruns or restoredrills in a namespace
// (SubjectAccessReview), asking the API server once per question.
type access struct {
	s       *Server
	ctx     context.Context
	viewer  viewer
	answers map[[3]string]bool
}

func (s *Server) accessOf(ctx context.Context, v viewer) *access {
	return &access{s: s, ctx: ctx, viewer: v, answers: map[[3]string]bool{}}
}

// may reports whether the viewer may verb resource in namespace; anybody
// may anything with --auth=none. A review that fails is a no.
func (a *access) may(verb, resource, namespace string) bool {
	if a.s.Auth == nil {
		return true
	}
	key := [3]string{verb, resource, namespace}
	if ok, asked := a.answers[key]; asked {
		return ok
	}
	ok, err := a.s.allowed(a.ctx, a.viewer.user, verb, resource, namespace)
	if err != nil {
		a.s.Log.Error(err, "SubjectAccessReview failed")
	}
	a.answers[key] = err == nil && ok
	return a.answers[key]
}

// mayRead: the pages show drills and their runs' messages, so both must
// be listable.
func (a *access) mayRead(namespace string) bool {
	return a.may("list", "restoredrills", namespace) && a.may("list", "drillruns", namespace)
}

// formToken is the value the status page's forms carry against cross-site
// requests: derived from the viewer's token, which another site cannot
// read (the cookie is HttpOnly, and SameSite=Strict keeps browsers from
// sending it with another site's requests at all). It is the same on every
// replica, and a new sign-in makes a new one.
func formToken(sessionToken string) string {
	sum := sha256.Sum256([]byte("drillerd status page form\x00" + sessionToken))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// validFormToken compares a form's token with the viewer's in constant time.
func validFormToken(got, sessionToken string) bool {
	want := formToken(sessionToken)
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
