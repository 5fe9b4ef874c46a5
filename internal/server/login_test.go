package server

import (
	"net/http"
	"strings"
	"testing"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
)

// site is the origin the login tests' requests are addressed to.
const site = "https://drillerd.example:8443"

func TestLogin(t *testing.T) {
	tests := []struct {
		name       string
		req        *request
		want       int
		wantText   string
		wantCookie bool
		wantReview bool // whether the token was reviewed
	}{
		{"signed in", newRequest("POST", site+"/login", "token=good").Form().Header("Origin", site), 303, "", true, true},
		{"token with spaces around it", newRequest("POST", site+"/login", "token=+good%0A").Form().Header("Origin", site), 303, "", true, true},
		{"same-origin Referer without Origin", newRequest("POST", site+"/login", "token=good").Form().Header("Referer", site+"/login"), 303, "", true, true},
		{"Origin with the default port spelled out", newRequest("POST", "https://drillerd.example/login", "token=good").Form().Header("Origin", "https://drillerd.example:443"), 303, "", true, true},
		{"invalid token", newRequest("POST", site+"/login", "token=forged").Form().Header("Origin", site), 401, "the token is not valid for audience drillerd", false, true},
		{"token for the API server's audience", newRequest("POST", site+"/login", "token=for-apiserver").Form().Header("Origin", site), 401, "--audience drillerd", false, true},
		{"cross-site Origin", newRequest("POST", site+"/login", "token=good").Form().Header("Origin", "https://evil.example"), 403, `refused: a POST here must come from this page, not from Origin &#34;https://evil.example&#34;`, false, false},
		{"opaque Origin", newRequest("POST", site+"/login", "token=good").Form().Header("Origin", "null"), 403, "not from Origin", false, false},
		{"plain-HTTP Origin of the same host", newRequest("POST", site+"/login", "token=good").Form().Header("Origin", "http://drillerd.example:8443"), 403, "not from Origin", false, false},
		{"another port of the same host", newRequest("POST", site+"/login", "token=good").Form().Header("Origin", "https://drillerd.example"), 403, "not from Origin", false, false},
		{"cross-site Referer", newRequest("POST", site+"/login", "token=good").Form().Header("Referer", "https://evil.example/page"), 403, "not from Referer", false, false},
		{"neither Origin nor Referer", newRequest("POST", site+"/login", "token=good").Form(), 403, "no Origin or Referer header", false, false},
		{"not a form", newRequest("POST", site+"/login", `{"token":"good"}`).Header("Content-Type", "application/json").Header("Origin", site), 400, "application/x-www-form-urlencoded", false, false},
		{"empty token", newRequest("POST", site+"/login", "token=").Form().Header("Origin", site), 400, "paste a token", false, false},
		{"two tokens", newRequest("POST", site+"/login", "token=good&token=nobody").Form().Header("Origin", site), 400, "exactly one token field", false, false},
		{"token that a cookie would mangle", newRequest("POST", site+"/login", "token=go%3Bod").Form().Header("Origin", site), 400, "not a bearer token", false, false},
		{"token too long for a cookie", newRequest("POST", site+"/login", "token="+strings.Repeat("a", maxCookieToken+1)).Form().Header("Origin", site), 400, "cannot be kept in a cookie", false, false},
		{"form too large", newRequest("POST", site+"/login", "token="+strings.Repeat("a", MaxBodyBytes)).Form().Header("Origin", site), 413, "larger than", false, false},
		{"TokenReview unavailable", newRequest("POST", site+"/login", "token="+reviewerDown).Form().Header("Origin", site), 503, "cannot review the token now", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTestServer(t)
			rec := tt.req.serve(srv)
			if rec.Code != tt.want || !strings.Contains(rec.Body.String(), tt.wantText) {
				t.Errorf("%d %s, want %d containing %q", rec.Code, rec.Body, tt.want, tt.wantText)
			}
			cookies := rec.Result().Cookies()
			if tt.wantCookie {
				if rec.Header().Get("Location") != "/" {
					t.Errorf("redirected to %q, want /", rec.Header().Get("Location"))
				}
				if len(cookies) != 1 {
					t.Fatalf("cookies %v, want the session cookie", cookies)
				}
				c := cookies[0]
				if c.Name != tokenCookie || c.Value != "good" || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.MaxAge != 1800 {
					t.Errorf("cookie %s, want %s=good; Path=/; Max-Age=1800; HttpOnly; Secure; SameSite=Strict", c, tokenCookie)
				}
			} else {
				if len(cookies) != 0 {
					t.Errorf("cookies %v, want none", cookies)
				}
				if !strings.Contains(rec.Body.String(), `<form id="login" method="post" action="/login">`) {
					t.Errorf("no login form to try again:\n%s", rec.Body)
				}
			}
			if reviewed := tokenReviews(srv) > 0; reviewed != tt.wantReview {
				t.Errorf("token reviewed: %v, want %v", reviewed, tt.wantReview)
			}
		})
	}
}

func TestStatusPageSession(t *testing.T) {
	drill := newDrill("orders-db").Obj()
	tests := []struct {
		name           string
		req            *request
		want           int
		wantText       []string
		wantNot        []string
		wantCookieGone bool
	}{
		{"no token: the login form", newRequest("GET", site+"/", ""), 401,
			[]string{`<form id="login"`, "kubectl create token -n NAMESPACE SERVICEACCOUNT --audience drillerd", "for 30m0s"}, []string{"shop/orders-db", `id="error"`}, false},
		{"the login form", newRequest("GET", site+"/login", ""), 200, []string{`<form id="login"`, `name="token" type="password"`}, nil, false},
		{"signed in with the cookie", newRequest("GET", site+"/", "").Cookie("good"), 200,
			[]string{"Signed in as alice", "shop/orders-db", `<form class="inline" method="post" action="/logout">`}, []string{`<form id="login"`}, false},
		{"with the Authorization header", newRequest("GET", site+"/", "").Bearer("good"), 200, []string{"Signed in as alice"}, nil, false},
		{"the header wins over the cookie", newRequest("GET", site+"/", "").Bearer("nobody").Cookie("good"), 200, []string{"Signed in as bob", "hidden (1)"}, []string{"shop/orders-db"}, false},
		{"a cookie whose token is no longer accepted", newRequest("GET", site+"/", "").Cookie("revoked"), 401,
			[]string{"the token you signed in with is no longer accepted", `<form id="login"`}, []string{"shop/orders-db"}, true},
		{"a cookie for another audience", newRequest("GET", site+"/", "").Cookie("for-apiserver"), 401, []string{"--audience drillerd"}, nil, true},
		{"an invalid header", newRequest("GET", site+"/", "").Bearer("forged"), 401, []string{"not valid for audience drillerd"}, []string{"no longer accepted"}, false},
		{"token in the URL", newRequest("GET", site+"/?token=good", ""), 400,
			[]string{"tokens in URLs are refused (query parameter &#34;token&#34;)", "Authorization: Bearer", "/login"}, []string{"shop/orders-db"}, false},
		{"access_token in the URL of the login form", newRequest("GET", site+"/login?access_token=good", ""), 400, []string{"tokens in URLs are refused"}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTestServer(t, drill, newRun("r1", "orders-db").In(drillsv1.PhaseDone).Obj())
			rec := tt.req.serve(srv)
			if rec.Code != tt.want {
				t.Errorf("%d, want %d:\n%s", rec.Code, tt.want, rec.Body)
			}
			for _, want := range tt.wantText {
				if !strings.Contains(rec.Body.String(), want) {
					t.Errorf("the page lacks %q:\n%s", want, rec.Body)
				}
			}
			for _, not := range tt.wantNot {
				if strings.Contains(rec.Body.String(), not) {
					t.Errorf("the page shows %q", not)
				}
			}
			h := rec.Header()
			if h.Get("Content-Type") != "text/html; charset=utf-8" || h.Get("Cache-Control") != "no-store" || h.Get("X-Frame-Options") != "DENY" ||
				!strings.Contains(h.Get("Content-Security-Policy"), "form-action 'self'") || !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
				t.Errorf("headers %v", h)
			}
			if got := h.Get("WWW-Authenticate"); (tt.want == http.StatusUnauthorized) != (got != "") {
				t.Errorf("WWW-Authenticate %q with %d", got, rec.Code)
			}
			cookies := rec.Result().Cookies()
			gone := len(cookies) == 1 && cookies[0].Name == tokenCookie && cookies[0].MaxAge < 0
			if gone != tt.wantCookieGone {
				t.Errorf("cookies %v; want the session cookie cleared: %v", cookies, tt.wantCookieGone)
			}
			if tt.want == http.StatusBadRequest && tokenReviews(srv) != 0 {
				t.Error("a token in a URL was reviewed")
			}
		})
	}
}

func TestLogout(t *testing.T) {
	tests := []struct {
		name      string
		req       *request
		want      int
		wantClear bool
	}{
		{"signed out", newRequest("POST", site+"/logout", "").Cookie("good").Header("Origin", site), 303, true},
		{"cross-site", newRequest("POST", site+"/logout", "").Cookie("good").Header("Origin", "https://evil.example"), 403, false},
		{"neither Origin nor Referer", newRequest("POST", site+"/logout", "").Cookie("good"), 403, false},
		{"GET changes nothing", newRequest("GET", site+"/logout", "").Cookie("good"), 404, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := tt.req.serve(newTestServer(t))
			if rec.Code != tt.want {
				t.Errorf("%d %s, want %d", rec.Code, rec.Body, tt.want)
			}
			cookies := rec.Result().Cookies()
			cleared := len(cookies) == 1 && cookies[0].Name == tokenCookie && cookies[0].Value == "" && cookies[0].MaxAge < 0 &&
				cookies[0].Secure && cookies[0].HttpOnly && cookies[0].Path == "/"
			if cleared != tt.wantClear {
				t.Errorf("cookies %v; want cleared: %v", cookies, tt.wantClear)
			}
			if tt.wantClear && rec.Header().Get("Location") != "/login" {
				t.Errorf("redirected to %q, want /login", rec.Header().Get("Location"))
			}
		})
	}
}

func TestStatusPageWithoutAuth(t *testing.T) {
	srv := newTestServer(t, newDrill("orders-db").Obj())
	srv.Auth = nil
	if rec := newRequest("GET", site+"/", "").serve(srv); rec.Code != 200 || !strings.Contains(rec.Body.String(), "Signed in as anonymous") || strings.Contains(rec.Body.String(), "Sign out") {
		t.Errorf("--auth=none: %d\n%s", rec.Code, rec.Body)
	}
	if rec := newRequest("GET", site+"/login", "").serve(srv); rec.Code != 303 || rec.Header().Get("Location") != "/" {
		t.Errorf("--auth=none, the login form: %d %q, want 303 to /", rec.Code, rec.Header().Get("Location"))
	}
}

// TestAPIReadsOnlyTheHeader: the API never takes the status page's cookie,
// so another site's form cannot start a drill with a viewer's session.
func TestAPIReadsOnlyTheHeader(t *testing.T) {
	runs := "/api/v1/namespaces/shop/restoredrills/orders-db/runs"
	tests := []struct {
		name string
		req  *request
		want int
	}{
		{"the session cookie alone", newRequest("POST", site+runs, "").Cookie("good").Header("Origin", site), 401},
		{"a cross-site form with the cookie", newRequest("POST", site+runs, "snapshotName=x").Form().Cookie("good").Header("Origin", "https://evil.example"), 401},
		{"the header", newRequest("POST", site+runs, "").Bearer("good"), 201},
		{"the header's scheme in lower case", newRequest("POST", site+runs, "").Header("Authorization", "bearer good"), 201},
		{"another scheme", newRequest("POST", site+runs, "").Header("Authorization", "Basic Z29vZDo="), 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTestServer(t, newDrill("orders-db").Obj())
			if rec := tt.req.serve(srv); rec.Code != tt.want {
				t.Errorf("%d %s, want %d", rec.Code, rec.Body, tt.want)
			}
		})
	}
}
