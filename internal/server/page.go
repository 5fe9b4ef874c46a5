package server

import (
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/rto"
)

// runsShown is how many of each drill's newest runs the page draws.
const runsShown = 5

// page serves GET /: the drills the viewer may list, their last result,
// RTO/RPO against targets and next run, and each recent run's phases as a
// waterfall. The token comes from the Authorization header or from the
// cookie the login form sets (login.go); without one, the page is the
// login form.
func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	user := authenticationv1.UserInfo{Username: "anonymous"}
	if s.Auth != nil {
		token, fromHeader := bearerToken(r)
		fromCookie := false
		if c, err := r.Cookie(tokenCookie); !fromHeader && err == nil && c.Value != "" {
			token, fromCookie = c.Value, true
		}
		if token == "" {
			s.loginPage(w, http.StatusUnauthorized, "")
			return
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
			return
		}
		user = u
	}
	drills := &drillsv1.RestoreDrillList{}
	runs := &drillsv1.DrillRunList{}
	if err := s.Client.List(r.Context(), drills); err != nil {
		http.Error(w, "cannot list RestoreDrills", http.StatusServiceUnavailable)
		return
	}
	if err := s.Client.List(r.Context(), runs); err != nil {
		http.Error(w, "cannot list DrillRuns", http.StatusServiceUnavailable)
		return
	}
	byDrill := map[string][]drillsv1.DrillRun{}
	for _, run := range runs.Items {
		key := run.Namespace + "/" + run.Spec.DrillName
		byDrill[key] = append(byDrill[key], run)
	}
	data := pageData{User: user.Username, Now: s.now().UTC().Format(time.RFC3339), SignOut: s.Auth != nil}
	visible := map[string]bool{}
	sort.Slice(drills.Items, func(i, j int) bool {
		a, b := drills.Items[i], drills.Items[j]
		return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
	})
	for _, d := range drills.Items {
		ok, seen := visible[d.Namespace]
		if !seen {
			ok = true
			if s.Auth != nil {
				// The page shows drills and their runs' messages: both must be readable.
				for _, resource := range []string{"restoredrills", "drillruns"} {
					allowed, err := s.allowed(r.Context(), user, "list", resource, d.Namespace)
					if ok = err == nil && allowed; !ok {
						break
					}
				}
			}
			visible[d.Namespace] = ok
		}
		if !ok {
			data.Hidden++
			continue
		}
		dr := byDrill[d.Namespace+"/"+d.Name]
		sort.Slice(dr, func(i, j int) bool { return dr[j].CreationTimestamp.Before(&dr[i].CreationTimestamp) })
		if len(dr) > runsShown {
			dr = dr[:runsShown]
		}
		data.Drills = append(data.Drills, drillView(d, dr))
	}
	htmlHeaders(w)
	if err := templates.ExecuteTemplate(w, "page", data); err != nil {
		s.Log.Error(err, "while rendering the page")
	}
}

type pageData struct {
	User, Now string
	SignOut   bool
	Hidden    int
	Drills    []drillRow
}

type drillRow struct {
	Namespace, Name, Schedule, Result, Reason, RTO, RPO, LastSuccess, NextRun string
	RTOMet, RPOMet                                                            bool
	Runs                                                                      []runRow
}

type runRow struct {
	Name, Trigger, Phase, Result, Message, Started string
	Waterfall                                      template.HTML
}

func drillView(d drillsv1.RestoreDrill, runs []drillsv1.DrillRun) drillRow {
	row := drillRow{Namespace: d.Namespace, Name: d.Name, Schedule: d.Spec.Schedule, Result: "never run", RTOMet: true, RPOMet: true}
	if row.Schedule == "" {
		row.Schedule = "on demand"
	} else if d.Spec.Suspend {
		row.Schedule += " (suspended)"
	}
	if last := d.Status.LastRun; last != nil {
		row.Result, row.Reason = string(last.Result), last.Reason
		if last.RTOSeconds != nil {
			row.RTO = rto.Human(*last.RTOSeconds)
			if t := d.Spec.Targets.RTO; t != nil {
				row.RTO += " / " + rto.Human(t.Seconds())
				row.RTOMet = *last.RTOSeconds <= t.Seconds()
			}
		}
		if last.RPOSeconds != nil {
			row.RPO = rto.Human(*last.RPOSeconds)
			if t := d.Spec.Targets.RPO; t != nil {
				row.RPO += " / " + rto.Human(t.Seconds())
				row.RPOMet = *last.RPOSeconds <= t.Seconds()
			}
		}
	}
	if t := d.Status.LastSuccessTime; t != nil {
		row.LastSuccess = t.UTC().Format(time.RFC3339)
	}
	if t := d.Status.NextScheduleTime; t != nil {
		row.NextRun = t.UTC().Format(time.RFC3339)
	}
	for _, r := range runs {
		rr := runRow{Name: r.Name, Trigger: string(r.Spec.Trigger), Phase: string(r.Status.Phase), Result: string(r.Status.Result), Message: r.Status.Message, Waterfall: waterfall(r.Status)}
		if r.Status.StartTime != nil {
			rr.Started = r.Status.StartTime.UTC().Format(time.RFC3339)
		}
		row.Runs = append(row.Runs, rr)
	}
	return row
}

var phaseColors = map[drillsv1.Phase]string{
	drillsv1.PhasePending: "#bbb", drillsv1.PhaseSelectingSnapshot: "#8e8cd8", drillsv1.PhaseProvisioning: "#5b8def",
	drillsv1.PhaseRestoringVolume: "#2fa4a9", drillsv1.PhaseStartingDatabase: "#3fae5a", drillsv1.PhaseValidating: "#e0a030",
	drillsv1.PhaseTearingDown: "#999",
}

// waterfall draws a run's phases as an inline SVG: one bar per phase, offset
// by its start and as long as it took.
func waterfall(s drillsv1.DrillRunStatus) template.HTML {
	if len(s.Phases) == 0 {
		return ""
	}
	start := s.Phases[0].StartTime.Time
	end := start
	for _, p := range s.Phases {
		e := p.StartTime.Time
		if p.EndTime != nil {
			e = p.EndTime.Time
		}
		if e.After(end) {
			end = e
		}
	}
	total := end.Sub(start).Seconds()
	if total <= 0 {
		total = 1
	}
	const width, bar, label = 420.0, 14, 170
	var b strings.Builder
	height := len(s.Phases)*(bar+4) + 4
	fmt.Fprintf(&b, `<svg class="waterfall" role="img" aria-label="phase waterfall" width="%d" height="%d" xmlns="http://www.w3.org/2000/svg">`, int(width)+label+10, height)
	for i, p := range s.Phases {
		y := 4 + i*(bar+4)
		x := label + p.StartTime.Sub(start).Seconds()/total*width
		took, secs := "running", 0.0
		if p.Seconds != nil {
			secs, took = *p.Seconds, rto.Human(*p.Seconds)
		}
		w := secs / total * width
		if w < 2 {
			w = 2
		}
		color := phaseColors[p.Name]
		if color == "" {
			color = "#777"
		}
		fmt.Fprintf(&b, `<text x="0" y="%d" font-size="11">%s %s</text>`, y+bar-3, template.HTMLEscapeString(string(p.Name)), took)
		fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"><title>%s: %s</title></rect>`, x, y, w, bar, color, template.HTMLEscapeString(string(p.Name)), took)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// templates are the status page and the login form.
var templates = template.Must(template.New("").Parse(`{{define "head"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>drillerd: restore drills</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}
table{border-collapse:collapse;margin-bottom:.5rem}th,td{padding:.3rem .6rem;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
.Succeeded{color:#17803d;font-weight:600}.Failed{color:#c0262d;font-weight:600}.Error{color:#b35c00;font-weight:600}
.missed{color:#c0262d}.runs{margin:0 0 1.5rem 1rem}.msg{color:#555;font-size:.85rem;max-width:40rem}
.who{margin:1rem 0}form.inline{display:inline}code{background:#f3f3f3;padding:0 .2rem}
</style></head><body>
<h1>Restore drills</h1>
{{end}}

{{define "page"}}{{template "head"}}
<div class="who">Signed in as {{.User}} · {{.Now}}{{if .Hidden}} · drills in namespaces you may not list are hidden ({{.Hidden}}){{end}}
{{if .SignOut}} · <form class="inline" method="post" action="/logout"><button type="submit">Sign out</button></form>{{end}}</div>
{{if not .Drills}}<p>No RestoreDrills yet.</p>{{end}}
{{range .Drills}}
<h2 id="{{.Namespace}}-{{.Name}}">{{.Namespace}}/{{.Name}}</h2>
<table><tr><th>Schedule</th><th>Last result</th><th>RTO / target</th><th>RPO / target</th><th>Last success</th><th>Next run</th></tr>
<tr><td>{{.Schedule}}</td><td class="{{.Result}}">{{.Result}}{{if .Reason}} ({{.Reason}}){{end}}</td>
<td{{if not .RTOMet}} class="missed"{{end}}>{{.RTO}}</td><td{{if not .RPOMet}} class="missed"{{end}}>{{.RPO}}</td>
<td>{{.LastSuccess}}</td><td>{{.NextRun}}</td></tr></table>
<div class="runs">{{range .Runs}}
<h3>{{.Name}} <small>{{.Trigger}} · {{.Started}} · {{.Phase}}</small> <span class="{{.Result}}">{{.Result}}</span></h3>
{{if .Message}}<p class="msg">{{.Message}}</p>{{end}}
{{.Waterfall}}
{{end}}</div>
{{end}}
</body></html>
{{end}}

{{define "refused"}}{{template "head"}}
<p class="Failed" id="error">{{.}}</p>
<p><a href="/login">Sign in</a></p>
</body></html>
{{end}}

{{define "login"}}{{template "head"}}
{{if .Error}}<p class="Failed" id="error">{{.Error}}</p>{{end}}
<form id="login" method="post" action="/login">
<p><label for="token">Kubernetes token for audience <code>{{.Audience}}</code></label><br>
<input id="token" name="token" type="password" autocomplete="off" required autofocus size="60"></p>
<p><button type="submit">Sign in</button></p>
</form>
<p>Mint a token with <code>kubectl create token -n NAMESPACE SERVICEACCOUNT --audience {{.Audience}}</code>.
The page shows the drills of the namespaces where the token's user may list restoredrills and drillruns.
The browser keeps the token in a cookie for {{.MaxAge}} or until you sign out; tokens in URLs are refused.</p>
</body></html>
{{end}}`))
