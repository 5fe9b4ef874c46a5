package restore

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// PodLogs asks the API server for the database container's last lines,
// bounded, and keeps the bound itself.
func TestPodLogsReadsTheDatabaseLogBounded(t *testing.T) {
	const ns = "drill-orders-db-0a1b2c3d"
	var asked []url.URL
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, *r.URL)
		switch r.URL.Path {
		case "/api/v1/namespaces/" + ns + "/pods/" + DatabasePodName + "/log":
			// A server that ignores limitBytes.
			w.Write([]byte(strings.Repeat("x", DatabaseLogBytes+100)))
		default:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Forbidden","code":403,` +
				`"message":"pods \"db\" is forbidden: User \"system:serviceaccount:drillerd-system:drillerd\" cannot get resource \"pods/log\""}`))
		}
	}))
	defer srv.Close()
	client, err := kubernetes.NewForConfig(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	logs := PodLogs{Client: client}

	got, err := logs.DatabaseLog(context.Background(), ns, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != DatabaseLogBytes {
		t.Errorf("read %d bytes, want at most %d", len(got), DatabaseLogBytes)
	}
	q := asked[0].Query()
	if q.Get("container") != DatabaseContainerName || q.Get("tailLines") != "50" || q.Get("limitBytes") != "16384" || q.Get("previous") != "true" {
		t.Errorf("asked %s, want container=database, tailLines=50, limitBytes=16384, previous=true", asked[0].String())
	}

	_, err = logs.DatabaseLog(context.Background(), "elsewhere", false)
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "pods/log") || !strings.Contains(err.Error(), "while reading the log of pod elsewhere/db") {
		t.Errorf("error %v: want the API server's Forbidden, wrapped with the pod", err)
	}
	if asked[1].Query().Has("previous") {
		t.Errorf("asked %s: want the current run's log", asked[1].String())
	}
}
