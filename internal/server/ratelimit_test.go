package server

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
)

const getRun = "/api/v1/namespaces/shop/drillruns/r1"

// attempt is one request of a client in a rate limit scenario.
type attempt struct {
	after  time.Duration // of the fake clock, before the request
	req    *request
	times  int // how often it is sent; 1 when 0
	want   int
	review bool // whether the token is reviewed (each time)
}

func (a attempt) count() int { return max(a.times, 1) }

func bad(from string) *request  { return newRequest("GET", getRun, "").Bearer("forged").From(from) }
func good(from string) *request { return newRequest("GET", getRun, "").Bearer("good").From(from) }

func TestFailedAuthenticationLimit(t *testing.T) {
	const a, b = "10.0.0.1:5000", "10.0.0.2:5000"
	tests := []struct {
		name           string
		attempts       []attempt
		wantRetryAfter string // of the last answer
	}{
		{"ten failures, then 429 without a TokenReview", []attempt{
			{req: bad(a), times: 10, want: 401, review: true},
			{req: bad(a), want: 429},
		}, "60"},
		{"a blocked client is blocked with a valid token too", []attempt{
			{req: bad(a), times: 10, want: 401, review: true},
			{after: 20 * time.Second, req: good(a), want: 429},
		}, "40"},
		{"the same client from another port", []attempt{
			{req: bad(a), times: 10, want: 401, review: true},
			{req: good("10.0.0.1:6000"), want: 429},
		}, "60"},
		{"other clients are not limited", []attempt{
			{req: bad(a), times: 10, want: 401, review: true},
			{req: bad(b), want: 401, review: true},
			{req: good(b), want: 200, review: true},
		}, ""},
		{"successes are not limited and do not count", []attempt{
			{req: good(a), times: 50, want: 200, review: true},
			{req: bad(a), times: 9, want: 401, review: true},
			{req: good(a), times: 50, want: 200, review: true},
			{req: bad(a), want: 401, review: true},
			{req: bad(a), want: 429},
		}, "60"},
		{"the window ends a minute after the first failure", []attempt{
			{req: bad(a), want: 401, review: true},
			{after: 30 * time.Second, req: bad(a), times: 9, want: 401, review: true},
			{after: 29 * time.Second, req: good(a), want: 429},
			{after: time.Second, req: good(a), want: 200, review: true},
			{req: bad(a), times: 9, want: 401, review: true},
		}, ""},
		{"failures spread over windows never block", []attempt{
			{req: bad(a), times: 9, want: 401, review: true},
			{after: time.Minute, req: bad(a), times: 9, want: 401, review: true},
			{after: time.Minute, req: bad(a), times: 9, want: 401, review: true},
		}, ""},
		{"a missing token is not a failure", []attempt{
			{req: newRequest("GET", getRun, "").From(a), times: 30, want: 401},
			{req: good(a), want: 200, review: true},
		}, ""},
		{"an unavailable TokenReview is not a failure", []attempt{
			{req: newRequest("GET", getRun, "").Bearer(reviewerDown).From(a), times: 30, want: 503, review: true},
			{req: good(a), want: 200, review: true},
		}, ""},
		{"no RBAC is not an authentication failure", []attempt{
			{req: newRequest("GET", getRun, "").Bearer("nobody").From(a), times: 30, want: 403, review: true},
			{req: good(a), want: 200, review: true},
		}, ""},
		{"one IPv6 /64 is one client", []attempt{
			{req: bad("[2001:db8:1:2::10]:5000"), times: 10, want: 401, review: true},
			{req: good("[2001:db8:1:2:aaaa::1]:5000"), want: 429},
			{req: good("[2001:db8:1:3::10]:5000"), want: 200, review: true},
		}, ""},
		{"the login form counts and is limited", []attempt{
			{req: newRequest("POST", site+"/login", "token=forged").Form().Header("Origin", site).From(a), times: 10, want: 401, review: true},
			{req: newRequest("POST", site+"/login", "token=good").Form().Header("Origin", site).From(a), want: 429},
		}, "60"},
		{"the status page counts and is limited", []attempt{
			{req: newRequest("GET", site+"/", "").Cookie("forged").From(a), times: 10, want: 401, review: true},
			{req: newRequest("GET", site+"/", "").Bearer("good").From(a), want: 429},
		}, "60"},
		{"failures on the page and the API add up", []attempt{
			{req: newRequest("GET", site+"/", "").Bearer("forged").From(a), times: 5, want: 401, review: true},
			{req: bad(a), times: 5, want: 401, review: true},
			{req: good(a), want: 429},
		}, "60"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTestServer(t, newRun("r1", "orders-db").In(drillsv1.PhaseDone).Obj())
			var last *http.Response
			for i, at := range tt.attempts {
				fakeClock(srv).Step(at.after)
				for range at.count() {
					before := tokenReviews(srv)
					rec := at.req.clone().serve(srv)
					if rec.Code != at.want {
						t.Fatalf("attempt %d: %d %s, want %d", i, rec.Code, rec.Body, at.want)
					}
					if reviewed := tokenReviews(srv) > before; reviewed != at.review {
						t.Fatalf("attempt %d: token reviewed %v, want %v", i, reviewed, at.review)
					}
					last = rec.Result()
				}
			}
			if got := last.Header.Get("Retry-After"); got != tt.wantRetryAfter {
				t.Errorf("Retry-After %q, want %q", got, tt.wantRetryAfter)
			}
			if last.StatusCode == http.StatusTooManyRequests {
				body, _ := io.ReadAll(last.Body)
				if !strings.Contains(string(body), "too many failed authentications from 10.0.0.1; try again in") {
					t.Errorf("429 body %s", body)
				}
			}
		})
	}
}

func TestFailureLimiterMemory(t *testing.T) {
	l := newFailureLimiter(FailureLimit{MaxFailures: 2, Window: time.Minute, MaxClients: 3})
	now := t0
	for i := range 5 {
		l.failed(fmt.Sprintf("10.0.0.%d", i), now)
		l.failed(fmt.Sprintf("10.0.0.%d", i), now)
		now = now.Add(time.Second)
	}
	if n := l.size(); n != 3 {
		t.Errorf("%d clients remembered, want at most 3", n)
	}
	for i, want := range []bool{false, false, true, true, true} {
		if blocked := l.retryAfter(fmt.Sprintf("10.0.0.%d", i), now) > 0; blocked != want {
			t.Errorf("client %d blocked: %v, want %v (the oldest are forgotten first)", i, blocked, want)
		}
	}
	if l.retryAfter("10.0.0.9", now.Add(time.Minute)); l.size() != 0 {
		t.Errorf("%d clients remembered after their windows ended, want 0", l.size())
	}
}

func TestClientKey(t *testing.T) {
	tests := []struct{ given, want string }{
		{"10.1.2.3:4567", "10.1.2.3"},
		{"[::ffff:10.1.2.3]:4567", "10.1.2.3"},
		{"[2001:db8:1:2:3:4:5:6]:4567", "2001:db8:1:2::/64"},
		{"[fe80::1%eth0]:4567", "fe80::1%eth0"},
		{"not an address", "not an address"},
	}
	for _, tt := range tests {
		if got := clientKey(tt.given); got != tt.want {
			t.Errorf("clientKey(%q) = %q, want %q", tt.given, got, tt.want)
		}
	}
}
