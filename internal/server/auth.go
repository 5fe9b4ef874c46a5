package server

import (
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DefaultAudience is the audience API tokens are minted for:
// kubectl create token -n NAMESPACE SERVICEACCOUNT --audience drillerd.
const DefaultAudience = "drillerd"

// ParseAudiences reads --api-audiences: one or more audiences,
// comma-separated.
func ParseAudiences(s string) ([]string, error) {
	var out []string
	for a := range strings.SplitSeq(s, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			return nil, fmt.Errorf("--api-audiences=%q: name one or more audiences, comma-separated, with no empty one (default %s)", s, DefaultAudience)
		}
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out, nil
}

// authError is an HTTP answer to a request that could not be authenticated.
type authError struct {
	code       int
	msg        string
	retryAfter time.Duration // with 429
}

// headers sets the headers the code calls for; the body is the caller's.
func (e *authError) headers(w http.ResponseWriter) {
	switch e.code {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="drillerd"`)
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(e.retryAfter.Seconds()))))
	}
}

func (s *Server) audiences() []string {
	if len(s.Audiences) == 0 {
		return []string{DefaultAudience}
	}
	return s.Audiences
}

// bearerToken is the token of an "Authorization: Bearer" header.
func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// authenticate reviews token for r's client. A client with too many recent
// failures gets 429 without a TokenReview; a token the API server rejects,
// or accepts for none of s's audiences, is a 401 and counts as a failure.
// The API server checks the audiences itself when the TokenReview names
// them; status.audiences is checked too, because an authenticator that
// ignores audiences answers with none.
func (s *Server) authenticate(r *http.Request, token string) (authenticationv1.UserInfo, *authError) {
	if token == "" {
		return authenticationv1.UserInfo{}, &authError{code: http.StatusUnauthorized, msg: "a bearer token is required (Authorization: Bearer <token>)"}
	}
	client := clientKey(r.RemoteAddr)
	limiter := s.limiter()
	if wait := limiter.retryAfter(client, s.now()); wait > 0 {
		return authenticationv1.UserInfo{}, &authError{
			code:       http.StatusTooManyRequests,
			msg:        fmt.Sprintf("too many failed authentications from %s; try again in %s", client, wait.Round(time.Second)),
			retryAfter: wait,
		}
	}
	audiences := s.audiences()
	review, err := s.Auth.AuthenticationV1().TokenReviews().Create(r.Context(), &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: audiences},
	}, metav1.CreateOptions{})
	if err != nil {
		s.Log.Error(err, "TokenReview failed")
		return authenticationv1.UserInfo{}, &authError{code: http.StatusServiceUnavailable, msg: "cannot review the token now; try again"}
	}
	var msg string
	switch {
	case !review.Status.Authenticated:
		msg = fmt.Sprintf("the token is not valid for audience %s (kubectl create token -n NAMESPACE SERVICEACCOUNT --audience %s)", strings.Join(audiences, ","), audiences[0])
	case !slices.ContainsFunc(review.Status.Audiences, func(a string) bool { return slices.Contains(audiences, a) }):
		msg = fmt.Sprintf("the token is not for audience %s (kubectl create token -n NAMESPACE SERVICEACCOUNT --audience %s)", strings.Join(audiences, ","), audiences[0])
	default:
		return review.Status.User, nil
	}
	if limiter.failed(client, s.now()) {
		s.Log.Info("too many failed authentications; refusing the client for a while", "client", client, "failures", limiter.limit.MaxFailures, "window", limiter.limit.Window.String())
	}
	return authenticationv1.UserInfo{}, &authError{code: http.StatusUnauthorized, msg: msg}
}

func (s *Server) limiter() *failureLimiter {
	s.limiterOnce.Do(func() { s.failures = newFailureLimiter(s.FailureLimit) })
	return s.failures
}

func (s *Server) now() time.Time {
	if s.Clock == nil {
		return time.Now()
	}
	return s.Clock.Now()
}
