package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/url"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// This file turns untrusted request parts into values the handlers can use:
// the body that starts a run, the namespace and names in paths, the login
// form, and the query parameters that must not carry tokens. Each function
// either returns a valid value or an error that is the client's 400; none
// may panic (FuzzRequests).

// runRequest is the optional body of POST .../runs.
type runRequest struct {
	SnapshotName string `json:"snapshotName,omitempty"`
}

// decodeRunRequest reads the body of POST .../runs: empty, or one JSON
// object with known fields only and nothing after it. A snapshotName must be
// a valid VolumeSnapshot name.
func decodeRunRequest(body []byte) (runRequest, error) {
	var req runRequest
	if len(bytes.TrimSpace(body)) == 0 {
		return req, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return runRequest{}, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return runRequest{}, errors.New("unexpected data after the JSON object")
	}
	if req.SnapshotName != "" {
		if msgs := validation.IsDNS1123Subdomain(req.SnapshotName); len(msgs) > 0 {
			return runRequest{}, fmt.Errorf("snapshotName %q is not a VolumeSnapshot name: %s", req.SnapshotName, strings.Join(msgs, "; "))
		}
	}
	return req, nil
}

// objectRef is a namespace and an object name taken from a request path.
type objectRef struct {
	Namespace, Name string
}

// parseObjectRef checks the {ns} and {name} path segments: a namespace name
// and an object name (RestoreDrills and DrillRuns are named like any
// Kubernetes object). Checking them keeps a name such as "r1/status", which
// the mux unescapes from "r1%2Fstatus", from reaching the API server's paths.
func parseObjectRef(ns, name, kind string) (objectRef, error) {
	if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
		return objectRef{}, fmt.Errorf("%q is not a namespace name: %s", ns, strings.Join(msgs, "; "))
	}
	if msgs := validation.IsDNS1123Subdomain(name); len(msgs) > 0 {
		return objectRef{}, fmt.Errorf("%q is not a %s name: %s", name, kind, strings.Join(msgs, "; "))
	}
	return objectRef{Namespace: ns, Name: name}, nil
}

// maxCookieToken bounds a token the login form accepts: browsers keep
// cookies of up to about 4 KiB, name and attributes included.
const maxCookieToken = 3800

// parseLoginForm reads the login form's urlencoded body: exactly one
// non-empty "token" field, short enough for a cookie and made of the
// characters a bearer token has (RFC 6750 b64token), so that the cookie
// carries it unchanged.
func parseLoginForm(contentType string, body []byte) (string, error) {
	mediaType, _, err := mime.ParseMediaType(contentType)
	if err != nil || mediaType != "application/x-www-form-urlencoded" {
		return "", errors.New("the login form must be sent as application/x-www-form-urlencoded")
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return "", fmt.Errorf("the login form is not urlencoded: %w", err)
	}
	tokens := form["token"]
	if len(tokens) != 1 {
		return "", errors.New("the login form needs exactly one token field")
	}
	token := strings.TrimSpace(tokens[0])
	switch {
	case token == "":
		return "", errors.New("paste a token into the form")
	case len(token) > maxCookieToken:
		return "", fmt.Errorf("the token is longer than %d bytes and cannot be kept in a cookie; send it in the Authorization header instead", maxCookieToken)
	case !isBearerToken(token):
		return "", errors.New("that is not a bearer token: it may contain only letters, digits and -._~+/ with = at the end")
	}
	return token, nil
}

// isBearerToken reports whether s matches RFC 6750's b64token:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isBearerToken(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
}

// urlTokenParams are query parameters that conventionally carry tokens.
var urlTokenParams = []string{"token", "access_token"}

// tokenInQuery names the first query parameter that would carry a token in
// the URL, if any. Parameter names are compared without case, and a pair
// whose value does not unescape still counts.
func tokenInQuery(rawQuery string) string {
	for pair := range strings.SplitSeq(rawQuery, "&") {
		key, _, _ := strings.Cut(pair, "=")
		if unescaped, err := url.QueryUnescape(key); err == nil {
			key = unescaped
		}
		for _, p := range urlTokenParams {
			if strings.EqualFold(strings.TrimSpace(key), p) {
				return p
			}
		}
	}
	return ""
}
