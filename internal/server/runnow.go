package server

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
)

// runNow serves the status page's "Run now" button: a form POSTed to
// /drills/{ns}/{name}/runs. It starts a run as the API's POST .../runs
// does, with the viewer's own credentials and rights: the viewer must be
// signed in (or send the Authorization header) and be allowed to create
// drillruns in the namespace (SubjectAccessReview), else 401 or 403. Then it
// redirects to the new run's page.
//
// CSRF: the session cookie is SameSite=Strict, so browsers do not send it
// with another site's form; besides, the POST must come from this server's
// own page (its Origin, or Referer, as login.go checks it), and carry the
// form token derived from the viewer's token (formToken), which another
// site cannot compute.
func (s *Server) runNow(w http.ResponseWriter, r *http.Request) {
	if err := sameOrigin(r); err != nil {
		s.errorPage(w, http.StatusForbidden, err.Error())
		return
	}
	v, ok := s.identify(w, r)
	if !ok {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		s.errorPage(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the form is larger than %d bytes", MaxBodyBytes))
		return
	}
	token, err := parseRunNowForm(r.Header.Get("Content-Type"), body)
	if err != nil {
		s.errorPage(w, http.StatusBadRequest, err.Error())
		return
	}
	if !validFormToken(token, v.token) {
		s.errorPage(w, http.StatusForbidden, "refused: the form does not come from your session's page; reload the page and press Run now again")
		return
	}
	ref, err := parseObjectRef(r.PathValue("ns"), r.PathValue("name"), "RestoreDrill")
	if err != nil {
		s.errorPage(w, http.StatusBadRequest, err.Error())
		return
	}
	if !s.accessOf(r.Context(), v).may("create", "drillruns", ref.Namespace) {
		s.errorPage(w, http.StatusForbidden, fmt.Sprintf("%s may not create drillruns.%s in namespace %s", v.user.Username, "drills.drillerd.dev", ref.Namespace))
		return
	}
	run, code, msg := s.startRun(r.Context(), ref, v.user.Username, "")
	if run == nil {
		s.errorPage(w, code, msg)
		return
	}
	http.Redirect(w, r, runLink(run.Namespace, run.Name), http.StatusSeeOther)
}

// parseRunNowForm reads the "Run now" form's urlencoded body: exactly one
// "csrf" field, the form token.
func parseRunNowForm(contentType string, body []byte) (string, error) {
	mediaType, _, err := mime.ParseMediaType(contentType)
	if err != nil || mediaType != "application/x-www-form-urlencoded" {
		return "", errors.New("the Run now form must be sent as application/x-www-form-urlencoded")
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return "", fmt.Errorf("the Run now form is not urlencoded: %w", err)
	}
	if tokens := form["csrf"]; len(tokens) == 1 && tokens[0] != "" {
		return tokens[0], nil
	}
	return "", errors.New("the Run now form needs exactly one csrf field: reload the page and press Run now again")
}
