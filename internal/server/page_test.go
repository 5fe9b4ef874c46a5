package server

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
)

// ordersHistory is a nightly drill of shop that has run 34 times: its
// status keeps the newest 30 (two Failed on a missed RTO target, one Error
// without measurements), the newest three are still kept as DrillRuns, the
// newest with every check and phase recorded. A second drill never ran.
func ordersHistory() []client.Object {
	drill := newDrill("orders-db").Schedule("0 3 * * *").Targets(15*time.Minute, 26*time.Hour).Obj()
	s := &drill.Status
	var runs []client.Object
	for i := range 34 {
		name := fmt.Sprintf("orders-db-%02d", i)
		done := t0.Add(time.Duration(i-33) * 24 * time.Hour)
		p := drillsv1.RunPoint{Name: name, Result: drillsv1.ResultSucceeded, CompletionTime: metav1.NewTime(done),
			RTOSeconds: ptr.To(400 + 15*float64(i)), RPOSeconds: ptr.To(3600 + 60*float64(i%7))}
		switch i {
		case 20, 31:
			p.Result, p.Reason, p.RTOSeconds = drillsv1.ResultFailed, "RTOTargetMissed", ptr.To(960.0)
		case 25:
			p.Result, p.Reason, p.RTOSeconds, p.RPOSeconds = drillsv1.ResultError, "Timeout", nil, nil
		}
		if i >= 4 {
			s.RecentRuns = append(s.RecentRuns, p)
		}
		if i >= 31 {
			b := newRun(name, "orders-db").Trigger(drillsv1.TriggerSchedule).In(drillsv1.PhaseDone).Result(p.Result).Reason(p.Reason).
				Created(done.Add(-time.Hour)).StartedAt(done.Add(-time.Hour)).CompletedAt(done).
				PhaseTiming(drillsv1.PhaseSelectingSnapshot, done.Add(-time.Hour), done.Add(-time.Hour+time.Second)).
				PhaseTiming(drillsv1.PhaseRestoringVolume, done.Add(-time.Hour+time.Second), done.Add(-time.Hour+5*time.Minute))
			if p.RTOSeconds != nil {
				b.RTO(*p.RTOSeconds, ptr.To(900.0), *p.RTOSeconds <= 900)
			}
			if p.RPOSeconds != nil {
				b.RPO(*p.RPOSeconds, ptr.To(93600.0), true, drillsv1.RPOBasisData)
			}
			runs = append(runs, b.Obj())
		}
	}
	newest := runs[len(runs)-1].(*drillsv1.DrillRun)
	newest.Status.Message = "3 checks passed; RTO 14m55s; RPO 1h05m (Data)"
	newest.Status.Snapshot = &drillsv1.SnapshotRef{Name: "nightly-20261123", CreationTime: &metav1.Time{Time: t0.Add(-65 * time.Minute)}}
	newest.Status.SandboxNamespace, newest.Status.SandboxRemoved = "drill-orders-db-5f2c9a1e", true
	newest.Status.Size = &drillsv1.RestoredSize{CapacityBytes: ptr.To[int64](100 << 30), DatabaseBytes: ptr.To[int64](61 << 30), ReadBytes: ptr.To[int64](58 << 30)}
	newest.Status.Phases = nil
	for i, step := range []struct {
		phase drillsv1.Phase
		took  time.Duration
	}{{drillsv1.PhaseSelectingSnapshot, time.Second}, {drillsv1.PhaseProvisioning, 4 * time.Second}, {drillsv1.PhaseRestoringVolume, 6 * time.Minute},
		{drillsv1.PhaseStartingDatabase, 95 * time.Second}, {drillsv1.PhaseValidating, 415 * time.Second}, {drillsv1.PhaseTearingDown, 40 * time.Second}} {
		start := t0.Add(-time.Hour)
		if i > 0 {
			start = newest.Status.Phases[i-1].EndTime.Time
		}
		end := metav1.NewMicroTime(start.Add(step.took))
		newest.Status.Phases = append(newest.Status.Phases, drillsv1.PhaseTiming{Name: step.phase, StartTime: metav1.NewMicroTime(start), EndTime: &end, Seconds: ptr.To(step.took.Seconds())})
	}
	newest.Status.Checks = []drillsv1.CheckResult{
		{Name: "orders-present", Database: "app", Passed: true, Value: "20412", Expected: ">= 1000", Seconds: 0.04},
		{Name: "TablesReadable", Database: "app", Passed: true, Value: "12 tables, 20412 rows, 0 large objects", Expected: "every table readable", Seconds: 3.2},
		{Name: "Amcheck", Database: "app", Passed: true, Value: "12 tables, 30 indexes verified", Expected: "every table and btree index verified", Seconds: 9.7},
	}
	last := s.RecentRuns[len(s.RecentRuns)-1]
	s.LastRun = &drillsv1.RunSummary{Name: last.Name, Result: last.Result, RTOSeconds: last.RTOSeconds, RPOSeconds: last.RPOSeconds, CompletionTime: &last.CompletionTime}
	s.LastSuccessTime = &last.CompletionTime
	s.RTOForecast = &drillsv1.RTOForecast{Runs: 29, Time: metav1.NewTime(last.CompletionTime.Add(30 * 24 * time.Hour)), HorizonSeconds: 30 * 86400,
		Seconds: 1340, LowerSeconds: 1290, SlopeSecondsPerDay: 15, TargetSeconds: ptr.To(900.0), AtRisk: true,
		TargetTime: &metav1.Time{Time: last.CompletionTime.Add(1 * 24 * time.Hour)}}
	return append(runs, drill, newDrill("users-db").Obj())
}

// parsed is an HTML page as a tree.
type parsed struct{ root *html.Node }

func parse(t *testing.T, body string) parsed {
	t.Helper()
	root, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return parsed{root}
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func hasClass(n *html.Node, class string) bool {
	for _, c := range strings.Fields(attr(n, "class")) {
		if c == class {
			return true
		}
	}
	return false
}

// all are the elements below n named tag ("" for any) with class ("" for
// any), in document order.
func all(n *html.Node, tag, class string) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			if c.Type == html.ElementNode && (tag == "" || c.Data == tag) && (class == "" || hasClass(c, class)) {
				out = append(out, c)
			}
			walk(c)
		}
	}
	walk(n)
	return out
}

func byID(t *testing.T, p parsed, id string) *html.Node {
	t.Helper()
	for _, n := range all(p.root, "", "") {
		if attr(n, "id") == id {
			return n
		}
	}
	t.Fatalf("no element #%s", id)
	return nil
}

func text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		switch n.Type {
		case html.TextNode:
			b.WriteString(n.Data)
		case html.ElementNode:
			if n.Data == "style" {
				return
			}
			b.WriteString(" ")
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.Join(strings.Fields(b.String()), " ")
}

func number(t *testing.T, n *html.Node, key string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(attr(n, key), 64)
	if err != nil {
		t.Fatalf("<%s %s=%q>: %v", n.Data, key, attr(n, key), err)
	}
	return v
}

func TestTheOverviewShowsEachDrillsHistory(t *testing.T) {
	srv := newTestServer(t, ordersHistory()...)
	rec := newRequest("GET", site+"/", "").Cookie("good").serve(srv)
	if rec.Code != http.StatusOK {
		t.Fatalf("%d:\n%s", rec.Code, rec.Body)
	}
	page := parse(t, rec.Body.String())
	orders := byID(t, page, "shop-orders-db")

	// The RTO chart: one dot per run that measured an RTO (29 of 30: the
	// Error measured none), the target line at 15m, and the points above it
	// on the far side of it.
	charts := all(orders, "svg", "rto-chart")
	if len(charts) != 1 {
		t.Fatalf("%d RTO charts, want 1", len(charts))
	}
	chart := charts[0]
	points := all(chart, "circle", "point")
	if len(points) != 29 {
		t.Errorf("the RTO chart has %d points, want 29", len(points))
	}
	targets := all(chart, "line", "target")
	if len(targets) != 1 || !strings.Contains(text(targets[0]), "target 15m00s") || number(t, targets[0], "y1") != number(t, targets[0], "y2") {
		t.Fatalf("RTO target lines %d, want one level line titled with the target", len(targets))
	}
	targetY := number(t, targets[0], "y1")
	above := 0
	for _, p := range points {
		title := text(p)
		if (number(t, p, "cy") < targetY) != strings.Contains(title, "RTO 16m00s") {
			t.Errorf("point %q is on the wrong side of the target line", title)
		}
		if number(t, p, "cy") < targetY {
			above++
		}
	}
	if above != 2 {
		t.Errorf("%d points above the target, want the 2 missed runs", above)
	}
	// The RPO chart: 29 points and the 26h target.
	rpo := all(orders, "svg", "rpo-chart")
	if len(rpo) != 1 || len(all(rpo[0], "circle", "point")) != 29 || len(all(rpo[0], "line", "target")) != 1 {
		t.Errorf("the RPO chart lacks its 29 points or its target line")
	}
	// Points of kept runs link to their pages.
	links := 0
	for _, a := range all(chart, "a", "") {
		if strings.HasPrefix(attr(a, "href"), "/runs/shop/orders-db-") {
			links++
		}
	}
	if links != 3 {
		t.Errorf("%d chart points link to their run, want the 3 kept runs", links)
	}

	// The strip: one entry per run, oldest first, in its result's class,
	// linking to the kept ones.
	strips := all(orders, "div", "strip")
	if len(strips) != 1 {
		t.Fatalf("%d strips, want 1", len(strips))
	}
	cells := all(strips[0], "", "cell")
	if len(cells) != 30 {
		t.Fatalf("the strip has %d entries, want one per run: 30", len(cells))
	}
	for i, c := range cells {
		name := fmt.Sprintf("orders-db-%02d", i+4)
		want := map[int]string{16: "Failed", 21: "Error", 27: "Failed"}[i]
		if want == "" {
			want = "Succeeded"
		}
		if !hasClass(c, want) || !strings.HasPrefix(attr(c, "title"), name+": "+want) {
			t.Errorf("strip entry %d: class %q, title %q; want %s of %s", i, attr(c, "class"), attr(c, "title"), want, name)
		}
		if kept := i >= 27; kept != (c.Data == "a" && attr(c, "href") == "/runs/shop/"+name) {
			t.Errorf("strip entry %d (%s): <%s href=%q>; kept runs link to their page, the others do not", i, name, c.Data, attr(c, "href"))
		}
	}

	// The last run's checks with their values, and its phases.
	rows := all(all(orders, "table", "checks")[0], "tr", "")
	if len(rows) != 4 || !strings.Contains(text(rows[1]), "PASS orders-present app") || !strings.Contains(text(rows[1]), "20412 >= 1000") ||
		!strings.Contains(text(rows[3]), "12 tables, 30 indexes verified") {
		t.Errorf("checks table %v, want the header and the last run's 3 checks with values", len(rows))
	}
	if len(all(orders, "svg", "waterfall")) != 1 {
		t.Error("no phase waterfall of the last run")
	}
	if forecast := all(orders, "p", "forecast"); len(forecast) != 1 || !hasClass(forecast[0], "at-risk") || !strings.Contains(text(forecast[0]), "in 30 days") {
		t.Error("no RTO forecast, or not marked at risk")
	}

	// Run now: a form POSTing to the drill's runs with the session's form token.
	forms := all(orders, "form", "run-now")
	if len(forms) != 1 || attr(forms[0], "method") != "post" || attr(forms[0], "action") != "/drills/shop/orders-db/runs" {
		t.Fatalf("Run now forms %d, want one posting to /drills/shop/orders-db/runs", len(forms))
	}
	inputs := all(forms[0], "input", "")
	if len(inputs) != 1 || attr(inputs[0], "name") != "csrf" || attr(inputs[0], "value") != formToken("good") {
		t.Errorf("the form carries %v, want the session's form token", inputs)
	}
	if buttons := all(forms[0], "button", ""); len(buttons) != 1 || attr(buttons[0], "disabled") != "" || text(buttons[0]) != "Run now" {
		t.Error("no enabled Run now button for alice, who may create drillruns")
	}
	// Links from the drill to its page, and from the last run to its page.
	var hrefs []string
	for _, a := range all(orders, "a", "") {
		hrefs = append(hrefs, attr(a, "href"))
	}
	for _, want := range []string{"/drills/shop/orders-db", "/runs/shop/orders-db-33"} {
		if !strings.Contains(strings.Join(hrefs, " "), want) {
			t.Errorf("no link to %s among %v", want, hrefs)
		}
	}

	// A drill that never ran: no strip, no charts but a note, a button.
	users := byID(t, page, "shop-users-db")
	if len(all(users, "", "cell")) != 0 || len(all(users, "svg", "")) != 0 || !strings.Contains(text(users), "No run has finished yet") || len(all(users, "form", "run-now")) != 1 {
		t.Errorf("the drill that never ran: %s", text(users))
	}
}

func TestRunNowIsOfferedOnlyToWhoMayCreateRuns(t *testing.T) {
	srv := newTestServer(t, ordersHistory()...)
	srv.Auth = nil // --auth=none: anybody may
	page := parse(t, newRequest("GET", site+"/", "").serve(srv).Body.String())
	if b := all(byID(t, page, "shop-orders-db"), "button", ""); len(b) != 1 || attr(b[0], "disabled") != "" {
		t.Error("--auth=none: no enabled Run now button")
	}

	// dave may list but not create in shop (a SubjectAccessReview says so).
	srv = newTestServer(t, ordersHistory()...)
	page = parse(t, newRequest("GET", site+"/", "").Cookie("read-only").serve(srv).Body.String())
	section := byID(t, page, "shop-orders-db")
	buttons := all(section, "button", "")
	if len(buttons) != 1 || !hasAttr(buttons[0], "disabled") || !strings.Contains(text(section), "dave may not create drillruns in namespace shop") {
		t.Errorf("dave, who may not create drillruns, gets an enabled button: %s", text(section))
	}
	// The button's form is refused all the same.
	rec := newRequest("POST", site+"/drills/shop/orders-db/runs", "csrf="+formToken("read-only")).Form().Header("Origin", site).Cookie("read-only").serve(srv)
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "dave may not create drillruns.drills.drillerd.dev in namespace shop") {
		t.Errorf("dave's Run now: %d, want 403:\n%s", rec.Code, rec.Body)
	}
}

func hasAttr(n *html.Node, key string) bool {
	for _, a := range n.Attr {
		if a.Key == key {
			return true
		}
	}
	return false
}

func TestRunNow(t *testing.T) {
	post := func(path, body string) *request {
		return newRequest("POST", site+path, body).Form().Header("Origin", site)
	}
	good := "csrf=" + formToken("good")
	busy := newRun("orders-db-34", "orders-db").In(drillsv1.PhaseValidating).Obj()
	tests := []struct {
		name     string
		req      *request
		extra    []client.Object
		want     int
		wantText string
		created  bool
	}{
		{"started", post("/drills/shop/orders-db/runs", good).Cookie("good"), nil, 303, "", true},
		{"with the Authorization header", post("/drills/shop/orders-db/runs", "csrf="+formToken("good")).Bearer("good"), nil, 303, "", true},
		{"no permission", post("/drills/shop/orders-db/runs", "csrf="+formToken("nobody")).Cookie("nobody"), nil, 403, "bob may not create drillruns.drills.drillerd.dev in namespace shop", false},
		{"permission to read only", post("/drills/shop/orders-db/runs", "csrf="+formToken("read-only")).Cookie("read-only"), nil, 403, "dave may not create drillruns", false},
		{"permission in another namespace only", post("/drills/billing/orders-db/runs", good).Cookie("good"), nil, 403, "alice may not create drillruns.drills.drillerd.dev in namespace billing", false},
		{"not signed in", post("/drills/shop/orders-db/runs", good), nil, 401, `<form id="login"`, false},
		{"another session's form token", post("/drills/shop/orders-db/runs", "csrf="+formToken("nobody")).Cookie("good"), nil, 403, "does not come from your session", false},
		{"no form token", post("/drills/shop/orders-db/runs", "").Cookie("good"), nil, 400, "exactly one csrf field", false},
		{"a cross-site form", newRequest("POST", site+"/drills/shop/orders-db/runs", good).Form().Header("Origin", "https://evil.example").Cookie("good"), nil, 403, "must come from this page", false},
		{"no Origin nor Referer", newRequest("POST", site+"/drills/shop/orders-db/runs", good).Form().Cookie("good"), nil, 403, "no Origin or Referer", false},
		{"not a form", post("/drills/shop/orders-db/runs", `{"csrf":"x"}`).Header("Content-Type", "application/json").Cookie("good"), nil, 400, "x-www-form-urlencoded", false},
		{"a run in progress", post("/drills/shop/orders-db/runs", good).Cookie("good"), []client.Object{busy}, 409, "run orders-db-34 of drill orders-db is still in progress", false},
		{"an unknown drill", post("/drills/shop/nope/runs", good).Cookie("good"), nil, 404, "no RestoreDrill nope in namespace shop", false},
		{"a name that is no name", post("/drills/shop/Orders_DB/runs", good).Cookie("good"), nil, 400, "is not a RestoreDrill name", false},
		{"GET starts nothing", newRequest("GET", site+"/drills/shop/orders-db/runs", "").Cookie("good"), nil, 404, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTestServer(t, append(ordersHistory(), tt.extra...)...)
			rec := tt.req.serve(srv)
			if rec.Code != tt.want || !strings.Contains(rec.Body.String(), tt.wantText) {
				t.Errorf("%d, want %d containing %q:\n%s", rec.Code, tt.want, tt.wantText, rec.Body)
			}
			runs := &drillsv1.DrillRunList{}
			if err := srv.Client.List(context.Background(), runs); err != nil {
				t.Fatal(err)
			}
			var created []drillsv1.DrillRun
			for _, r := range runs.Items {
				if r.Spec.Trigger == drillsv1.TriggerHTTP {
					created = append(created, r)
				}
			}
			if !tt.created {
				if len(created) != 0 {
					t.Errorf("runs created: %v", created)
				}
				return
			}
			if len(created) != 1 || created[0].Spec.DrillName != "orders-db" || created[0].Annotations["drills.drillerd.dev/requested-by"] != "alice" {
				t.Fatalf("runs created %+v, want one of orders-db requested by alice", created)
			}
			if got := rec.Header().Get("Location"); got != "/runs/shop/"+created[0].Name {
				t.Errorf("redirected to %q, want the new run's page", got)
			}
		})
	}
}

func TestRunNowWithoutAuth(t *testing.T) {
	srv := newTestServer(t, ordersHistory()...)
	srv.Auth = nil
	rec := newRequest("POST", site+"/drills/shop/orders-db/runs", "csrf="+formToken("")).Form().Header("Origin", site).serve(srv)
	if rec.Code != http.StatusSeeOther || !strings.HasPrefix(rec.Header().Get("Location"), "/runs/shop/orders-db-http-") {
		t.Errorf("--auth=none: %d %q, want 303 to the new run", rec.Code, rec.Header().Get("Location"))
	}
	if rec := newRequest("POST", site+"/drills/shop/orders-db/runs", "csrf="+formToken("")).Form().Header("Origin", "https://evil.example").serve(srv); rec.Code != http.StatusForbidden {
		t.Errorf("--auth=none, a cross-site form: %d, want 403", rec.Code)
	}
}

func TestTheDrillAndRunPagesLinkToEachOther(t *testing.T) {
	srv := newTestServer(t, ordersHistory()...)
	rec := newRequest("GET", site+"/drills/shop/orders-db", "").Cookie("good").serve(srv)
	if rec.Code != http.StatusOK {
		t.Fatalf("drill page: %d\n%s", rec.Code, rec.Body)
	}
	page := parse(t, rec.Body.String())
	runs := all(page.root, "table", "runs")
	if len(runs) != 1 {
		t.Fatal("the drill page lists no runs")
	}
	var linked []string
	for _, a := range all(runs[0], "a", "") {
		linked = append(linked, attr(a, "href"))
	}
	if strings.Join(linked, " ") != "/runs/shop/orders-db-33 /runs/shop/orders-db-32 /runs/shop/orders-db-31" {
		t.Errorf("the drill page links to runs %v, want the 3 kept, newest first", linked)
	}
	if len(all(page.root, "svg", "rto-chart")) != 1 || len(all(page.root, "", "cell")) != 30 {
		t.Error("the drill page lacks the chart or the strip")
	}

	rec = newRequest("GET", site+"/runs/shop/orders-db-33", "").Cookie("good").serve(srv)
	if rec.Code != http.StatusOK {
		t.Fatalf("run page: %d\n%s", rec.Code, rec.Body)
	}
	run := parse(t, rec.Body.String())
	back := false
	for _, a := range all(run.root, "a", "") {
		back = back || attr(a, "href") == "/drills/shop/orders-db"
	}
	if !back || len(all(run.root, "table", "checks")) != 1 || len(all(run.root, "svg", "waterfall")) != 1 || !strings.Contains(text(run.root), "RTO / target 14m55s / 15m00s") {
		t.Errorf("the run page lacks the link to its drill, its checks, its waterfall or its RTO:\n%s", text(run.root))
	}

	for _, tt := range []struct {
		name, path, token string
		want              int
		wantText          string
	}{
		{"bob may not read shop", "/drills/shop/orders-db", "nobody", 403, "bob may not list restoredrills and drillruns in namespace shop"},
		{"bob may not read its runs", "/runs/shop/orders-db-33", "nobody", 403, "bob may not list"},
		{"an unknown drill", "/drills/shop/nope", "good", 404, "no RestoreDrill nope in namespace shop"},
		{"a pruned run", "/runs/shop/orders-db-05", "good", 404, "no DrillRun orders-db-05 in namespace shop"},
		{"not signed in", "/runs/shop/orders-db-33", "", 401, `<form id="login"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := newRequest("GET", site+tt.path, "")
			if tt.token != "" {
				req.Cookie(tt.token)
			}
			if rec := req.serve(srv); rec.Code != tt.want || !strings.Contains(rec.Body.String(), tt.wantText) {
				t.Errorf("%d, want %d containing %q:\n%s", rec.Code, tt.want, tt.wantText, rec.Body)
			}
		})
	}
}

func TestChartScalesEndAtRoundDurations(t *testing.T) {
	for _, tt := range []struct{ given, want float64 }{
		{0, 1}, {0.4, 1}, {7, 8}, {59, 60}, {61, 120}, {18 * 60, 20 * 60}, {28.6 * 3600, 30 * 3600}, {50 * 24 * 3600, 50 * 24 * 3600},
	} {
		if got := niceCeiling(tt.given); got != tt.want {
			t.Errorf("niceCeiling(%v) = %v, want %v", tt.given, got, tt.want)
		}
	}
}

// What a run's status says is shown as text, never as markup: whoever may
// write a DrillRun's status must not put a script on the page an SRE reads.
func TestPagesShowWhatStatusesSayAsText(t *testing.T) {
	const hostile = `<script>alert(1)</script>"><img src=x onerror=alert(2)>'&amp;`
	objs := ordersHistory()
	newest := objs[2].(*drillsv1.DrillRun)
	if newest.Name != "orders-db-33" {
		t.Fatalf("the newest run is %s", newest.Name)
	}
	newest.Status.Message = "message " + hostile
	newest.Status.Reason = "reason " + hostile
	newest.Status.Result = drillsv1.RunResult("result " + hostile)
	newest.Status.Checks[0].Name, newest.Status.Checks[0].Value, newest.Status.Checks[0].Message = "check "+hostile, "value "+hostile, "why "+hostile
	newest.Status.Checks[0].Passed = false
	// The drill's own status: its recent runs feed the strip's titles and
	// classes and the charts' points.
	drill := objs[3].(*drillsv1.RestoreDrill)
	if drill.Name != "orders-db" {
		t.Fatalf("the drill is %s", drill.Name)
	}
	recent := &drill.Status.RecentRuns[len(drill.Status.RecentRuns)-1]
	recent.Reason, recent.Result = "strip "+hostile, drillsv1.RunResult("point "+hostile)
	srv := newTestServer(t, objs...)
	for _, path := range []string{"/", "/drills/shop/orders-db", "/runs/shop/orders-db-33"} {
		t.Run(path, func(t *testing.T) {
			rec := newRequest("GET", site+path, "").Cookie("good").serve(srv)
			if rec.Code != http.StatusOK {
				t.Fatalf("%d:\n%s", rec.Code, rec.Body)
			}
			page := parse(t, rec.Body.String())
			if n := len(all(page.root, "script", "")) + len(all(page.root, "img", "")); n != 0 {
				t.Errorf("%d script or img elements on the page:\n%s", n, rec.Body)
			}
			got := text(page.root)
			for _, want := range []string{"check " + hostile, "value " + hostile, "why " + hostile} {
				if !strings.Contains(got, want) {
					t.Errorf("the page does not show %q as text:\n%s", want, got)
				}
			}
			if path != "/runs/shop/orders-db-33" {
				var titles []string
				for _, n := range all(page.root, "", "cell") {
					titles = append(titles, attr(n, "title"))
				}
				for _, n := range all(page.root, "circle", "point") {
					titles = append(titles, text(n))
				}
				for _, want := range []string{"strip " + hostile, "point " + hostile} {
					if !strings.Contains(strings.Join(titles, "\n"), want) {
						t.Errorf("the strip and the charts do not show %q as text: %q", want, titles)
					}
				}
			}
			if path == "/runs/shop/orders-db-33" {
				for _, want := range []string{"message " + hostile, "reason " + hostile, "result " + hostile} {
					if !strings.Contains(got, want) {
						t.Errorf("the run page does not show %q as text:\n%s", want, got)
					}
				}
			}
		})
	}
}
