package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
)

// FuzzRequests feeds the API's request parsing with arbitrary paths and
// bodies: the body that starts a run, the namespace and names in paths, the
// login form and the query's token parameters, first to the parsers alone,
// then as whole requests of a signed-in user to the handler. Nothing may
// panic, every answer must be one the API documents, and whatever is
// accepted must be valid. `go test` runs the seeds of testdata/fuzz;
// `go test -fuzz FuzzRequests ./internal/server/` looks for more.
func FuzzRequests(f *testing.F) {
	f.Fuzz(func(t *testing.T, path string, body []byte) {
		req, runErr := decodeRunRequest(body)
		if runErr == nil && req.SnapshotName != "" && len(validation.IsDNS1123Subdomain(req.SnapshotName)) > 0 {
			t.Errorf("decodeRunRequest accepted snapshotName %q", req.SnapshotName)
		}
		token, formErr := parseLoginForm("application/x-www-form-urlencoded", body)
		if formErr == nil {
			if token == "" || len(token) > maxCookieToken || strings.TrimSpace(token) != token {
				t.Errorf("parseLoginForm accepted %q", token)
			}
			// The cookie carries the token unchanged.
			r := &http.Request{Header: http.Header{"Cookie": {sessionCookie(token, sessionMaxAge).String()}}}
			if c, err := r.Cookie(tokenCookie); err != nil || c.Value != token {
				t.Errorf("the cookie does not carry %q: %v %v", token, c, err)
			}
		}
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		_, rawQuery, _ := strings.Cut(path, "?")
		tokenParam := tokenInQuery(rawQuery)

		srv := newTestServer(t, newDrill("orders-db").Obj(), newRun("r1", "orders-db").In(drillsv1.PhaseDone).Obj())
		for _, method := range []string{http.MethodPost, http.MethodGet} {
			r, err := http.NewRequest(method, site+path, bytes.NewReader(body))
			if err != nil {
				continue // not a URL a client could send
			}
			r.Header.Set("Authorization", "Bearer good")
			r.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			srv.Handler().ServeHTTP(rec, r)
			documented := []int{200, 201, 301, 303, 307, 308, 400, 401, 403, 404, 405, 409, 413}
			if !slices.Contains(documented, rec.Code) {
				t.Errorf("%s %q: %d %s", method, path, rec.Code, rec.Body)
			}
			if rec.Code == http.StatusCreated && runErr != nil {
				t.Errorf("%s %q: a run was created from a body decodeRunRequest refuses (%v)", method, path, runErr)
			}
			if tokenParam != "" && r.URL.RawQuery == rawQuery && rec.Code != http.StatusBadRequest {
				t.Errorf("%s %q: %d with a token in the URL, want 400", method, path, rec.Code)
			}
		}

		login := httptest.NewRequest(http.MethodPost, site+"/login", bytes.NewReader(body))
		login.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		login.Header.Set("Origin", site)
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, login)
		switch rec.Code {
		case http.StatusSeeOther:
			cookies := rec.Result().Cookies()
			if formErr != nil || len(cookies) != 1 || cookies[0].Value != token || testTokens[token].user == "" {
				t.Errorf("signed in with %q (form error %v): cookies %v", body, formErr, cookies)
			}
		case http.StatusBadRequest, http.StatusUnauthorized, http.StatusRequestEntityTooLarge:
			if len(rec.Result().Cookies()) != 0 {
				t.Errorf("a refused login set a cookie: %v", rec.Result().Cookies())
			}
		default:
			t.Errorf("login with %q: %d %s", body, rec.Code, rec.Body)
		}
	})
}

// FuzzHandlers sends whole requests to the handler as a client could: any
// method, path, Authorization and Cookie header, Origin and body, against
// a drill whose newest run is in progress or tearing down with its
// verdict. Nothing may panic; every answer is one the API documents, with
// its headers: JSON errors under /api/ whose code is the status, a
// WWW-Authenticate challenge with every 401 of the API, no token echoed
// back, a run created only for an authorised POST when no run of the drill
// is without a verdict. `go test` runs the seeds of testdata/fuzz;
// `make fuzz` looks for more.
func FuzzHandlers(f *testing.F) {
	f.Fuzz(func(t *testing.T, method, path, authorization, cookie, origin string, body []byte, tearingDown bool) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		existing := newRun("r1", "orders-db").In(drillsv1.PhaseValidating)
		if tearingDown {
			existing = newRun("r1", "orders-db").In(drillsv1.PhaseTearingDown).Result(drillsv1.ResultFailed)
		}
		srv := newTestServer(t, newDrill("orders-db").Obj(), existing.Obj())
		r, err := http.NewRequest(method, site+path, bytes.NewReader(body))
		if err != nil {
			return // not a request a client could send
		}
		for key, value := range map[string]string{"Authorization": authorization, "Cookie": cookie, "Origin": origin} {
			if value != "" {
				r.Header.Set(key, value)
			}
		}
		r.Header.Set("Content-Type", "application/json")
		if r.Method == http.MethodPost && (r.URL.Path == "/login" || r.URL.Path == "/logout") {
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, r)

		documented := []int{200, 201, 301, 303, 307, 308, 400, 401, 403, 404, 405, 409, 413, 429, 503}
		if !slices.Contains(documented, rec.Code) {
			t.Fatalf("%s %q: %d %s", method, path, rec.Code, rec.Body)
		}
		api := strings.HasPrefix(r.URL.Path, "/api/")
		if api && rec.Code >= 400 && rec.Code != http.StatusMethodNotAllowed {
			var answer struct {
				Error string `json:"error"`
				Code  int    `json:"code"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil || answer.Error == "" || answer.Code != rec.Code {
				t.Errorf("%s %q: %d with the body %q, want a JSON error with its code", method, path, rec.Code, rec.Body)
			}
		}
		if api && rec.Code == http.StatusUnauthorized && rec.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("%s %q: 401 without WWW-Authenticate", method, path)
		}
		token, _ := strings.CutPrefix(authorization, "Bearer ")
		if len(token) >= 8 && strings.Contains(rec.Body.String(), token) {
			t.Errorf("%s %q: the answer echoes the token %q", method, path, token)
		}
		if rec.Code == http.StatusCreated {
			token, _ := bearerToken(r)
			authorised := r.Method == http.MethodPost && token == "good"
			if !authorised || !tearingDown {
				t.Errorf("%s %q with %q: a run was created (tearing down: %v)", method, path, authorization, tearingDown)
			}
		}
	})
}
