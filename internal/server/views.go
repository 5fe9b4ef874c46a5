package server

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/report"
	"github.com/drillerd/drillerd/internal/rto"
)

// What the pages show, worked out here so that pages.go only lays it out.

type pageData struct {
	Title     string
	User, Now string
	SignOut   bool
	Hidden    int
	Drills    []drillView
	Run       *runView
}

// drillView is one drill on the page.
type drillView struct {
	Namespace, Name, Link string
	Detail                bool // the drill's own page: every kept run
	Schedule              string
	Result, Reason        string
	RTO, RPO              string // measured / target
	RTOMet, RPOMet        bool
	LastSuccess, NextRun  string
	RTOChart, RPOChart    markup
	RTOCaption            string
	RPOCaption            string
	StripLabel            string
	Strip                 []stripCell
	Forecast              *forecastView
	Last                  *runView // the newest finished run
	Runs                  []runView
	RunNow                runNowView
}

// stripCell is one run in the results strip.
type stripCell struct {
	Result, Title, Link string
}

// forecastView is the drill's RTO forecast in words.
type forecastView struct {
	Text   string
	AtRisk bool
}

// runNowView is the "Run now" form.
type runNowView struct {
	Action, Token string
	Allowed       bool
	Why           string // why the viewer may not
}

// runView is a run on the page.
type runView struct {
	Namespace, Name, Link, Drill, DrillLink string
	Trigger, Phase, Result, Reason, Message string
	Started, Completed, RTO, RPO            string
	Snapshot, Sandbox, Size                 string
	Checks                                  []checkRow
	Waterfall                               markup
}

type checkRow struct {
	Passed                                            bool
	Name, Database, Seconds, Value, Expected, Message string
}

func drillLink(namespace, name string) string {
	return "/drills/" + url.PathEscape(namespace) + "/" + url.PathEscape(name)
}

func runLink(namespace, name string) string {
	return "/runs/" + url.PathEscape(namespace) + "/" + url.PathEscape(name)
}

// drillView describes drill d with its runs (newest first) for viewer v.
func (s *Server) drillView(d drillsv1.RestoreDrill, runs []drillsv1.DrillRun, acc *access, v viewer) drillView {
	view := drillView{
		Namespace: d.Namespace, Name: d.Name, Link: drillLink(d.Namespace, d.Name),
		Schedule: d.Spec.Schedule, Result: "never run", RTOMet: true, RPOMet: true,
	}
	if view.Schedule == "" {
		view.Schedule = "on demand"
	} else if d.Spec.Suspend {
		view.Schedule += " (suspended)"
	}
	rtoTarget, rpoTarget := targetSeconds(d.Spec.Targets.RTO), targetSeconds(d.Spec.Targets.RPO)
	if last := d.Status.LastRun; last != nil {
		view.Result, view.Reason = string(last.Result), last.Reason
		view.RTO, view.RTOMet = measured(last.RTOSeconds, rtoTarget)
		view.RPO, view.RPOMet = measured(last.RPOSeconds, rpoTarget)
	}
	if t := d.Status.LastSuccessTime; t != nil {
		view.LastSuccess = t.UTC().Format(time.RFC3339)
	}
	if t := d.Status.NextScheduleTime; t != nil {
		view.NextRun = t.UTC().Format(time.RFC3339)
	}

	kept := map[string]bool{}
	for _, r := range runs {
		kept[r.Name] = true
		if view.Last == nil && r.Status.Phase == drillsv1.PhaseDone {
			last := runViewOf(r, false)
			view.Last = &last
		}
	}
	history := recentRuns(d, runs)
	var rtoPoints, rpoPoints []chartPoint
	for _, p := range history {
		link := ""
		if kept[p.Name] {
			link = runLink(d.Namespace, p.Name)
		}
		title := fmt.Sprintf("%s: %s", p.Name, p.Result)
		if p.Reason != "" {
			title += " (" + p.Reason + ")"
		}
		title += ", " + p.CompletionTime.UTC().Format(time.RFC3339)
		if p.RTOSeconds != nil {
			title += ", RTO " + rto.Human(*p.RTOSeconds)
			rtoPoints = append(rtoPoints, chartPoint{Run: p.Name, Link: link, Result: p.Result, Time: p.CompletionTime.Time, Value: *p.RTOSeconds})
		}
		if p.RPOSeconds != nil {
			title += ", RPO " + rto.Human(*p.RPOSeconds)
			rpoPoints = append(rpoPoints, chartPoint{Run: p.Name, Link: link, Result: p.Result, Time: p.CompletionTime.Time, Value: *p.RPOSeconds})
		}
		if link == "" {
			title += " (no longer kept)"
		}
		view.Strip = append(view.Strip, stripCell{Result: string(p.Result), Title: title, Link: link})
	}
	view.RTOChart = valueChart("rto-chart", "RTO", rtoPoints, rtoTarget)
	view.RPOChart = valueChart("rpo-chart", "RPO", rpoPoints, rpoTarget)
	view.RTOCaption, view.RPOCaption = caption("RTO", rtoTarget), caption("RPO", rpoTarget)
	view.StripLabel = "Last run"
	if n := len(view.Strip); n > 1 {
		view.StripLabel = fmt.Sprintf("Last %d runs", n)
	}
	view.Forecast = forecastOf(d)
	for _, r := range runs {
		view.Runs = append(view.Runs, runViewOf(r, false))
	}

	view.RunNow = runNowView{Action: view.Link + "/runs", Token: formToken(v.token), Allowed: acc.may("create", "drillruns", d.Namespace)}
	if !view.RunNow.Allowed {
		view.RunNow.Why = fmt.Sprintf("%s may not create drillruns in namespace %s", v.user.Username, d.Namespace)
	}
	return view
}

// caption says what a chart shows.
func caption(what string, target *float64) string {
	if target == nil {
		return what + " of each run (no target)"
	}
	return what + " of each run against the target"
}

// recentRuns are the drill's newest finished runs in brief, oldest first:
// status.recentRuns, or for a drill recorded before drillerd kept them, its
// finished runs still kept.
func recentRuns(d drillsv1.RestoreDrill, runs []drillsv1.DrillRun) []drillsv1.RunPoint {
	if len(d.Status.RecentRuns) > 0 {
		return d.Status.RecentRuns
	}
	var out []drillsv1.RunPoint
	for _, r := range runs {
		s := r.Status
		if s.Phase != drillsv1.PhaseDone || s.CompletionTime == nil {
			continue
		}
		p := drillsv1.RunPoint{Name: r.Name, Result: s.Result, Reason: s.Reason, CompletionTime: *s.CompletionTime}
		if s.RTO != nil {
			p.RTOSeconds = &s.RTO.Seconds
		}
		if s.RPO != nil {
			p.RPOSeconds = &s.RPO.Seconds
		}
		out = append(out, p)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].CompletionTime.Before(&out[j].CompletionTime) })
	if len(out) > drillsv1.RecentRunsKept {
		out = out[len(out)-drillsv1.RecentRunsKept:]
	}
	return out
}

// forecastOf says where the drill's RTO is heading.
func forecastOf(d drillsv1.RestoreDrill) *forecastView {
	f := d.Status.RTOForecast
	if f == nil {
		return nil
	}
	horizon := time.Duration(f.HorizonSeconds * float64(time.Second))
	text := fmt.Sprintf("Trend of the last %d RTOs: %s a day; in %s (%s) %s, at least %s",
		f.Runs, signed(f.SlopeSecondsPerDay), humanHorizon(horizon), f.Time.UTC().Format("2006-01-02"), rto.Human(f.Seconds), rto.Human(f.LowerSeconds))
	if f.TargetSeconds != nil {
		text += ", against the target " + rto.Human(*f.TargetSeconds)
		if f.TargetTime != nil {
			text += "; the trend reaches the target around " + f.TargetTime.UTC().Format("2006-01-02")
		}
	}
	if f.AtRisk {
		text += ". At risk: RTOTargetAtRisk fires."
	}
	return &forecastView{Text: text, AtRisk: f.AtRisk}
}

func signed(seconds float64) string {
	if seconds < 0 {
		return "-" + rto.Human(-seconds)
	}
	return "+" + rto.Human(seconds)
}

// humanHorizon writes a horizon in days when it is whole days.
func humanHorizon(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d == day:
		return "1 day"
	case d > 0 && d%day == 0:
		return fmt.Sprintf("%d days", d/day)
	}
	return d.String()
}

func targetSeconds(d *metav1.Duration) *float64 {
	if d == nil {
		return nil
	}
	s := d.Seconds()
	return &s
}

// measured writes a measurement against its target, and whether it met it.
func measured(seconds, target *float64) (string, bool) {
	if seconds == nil {
		return "", true
	}
	text := rto.Human(*seconds)
	if target == nil {
		return text, true
	}
	return text + " / " + rto.Human(*target), *seconds <= *target
}

// runViewOf describes a run; full adds what only its own page shows.
func runViewOf(r drillsv1.DrillRun, full bool) runView {
	s := r.Status
	v := runView{
		Namespace: r.Namespace, Name: r.Name, Link: runLink(r.Namespace, r.Name),
		Drill: r.Spec.DrillName, DrillLink: drillLink(r.Namespace, r.Spec.DrillName),
		Trigger: string(r.Spec.Trigger), Phase: string(s.Phase), Result: string(s.Result), Reason: s.Reason, Message: s.Message,
		Waterfall: waterfall(s),
	}
	if v.Phase == "" {
		v.Phase = "waiting for drillerd"
	}
	if s.StartTime != nil {
		v.Started = s.StartTime.UTC().Format(time.RFC3339)
	}
	if s.CompletionTime != nil {
		v.Completed = s.CompletionTime.UTC().Format(time.RFC3339)
	}
	if s.RTO != nil {
		v.RTO, _ = measured(&s.RTO.Seconds, s.RTO.TargetSeconds)
	}
	if s.RPO != nil {
		v.RPO, _ = measured(&s.RPO.Seconds, s.RPO.TargetSeconds)
		v.RPO += " (" + string(s.RPO.Basis) + ")"
	}
	for _, c := range s.Checks {
		v.Checks = append(v.Checks, checkRow{
			Passed: c.Passed, Name: c.Name, Database: c.Database, Seconds: rto.Human(c.Seconds),
			Value: c.Value, Expected: c.Expected, Message: c.Message,
		})
	}
	if !full {
		return v
	}
	if sn := s.Snapshot; sn != nil {
		v.Snapshot = sn.Name
		if sn.CreationTime != nil {
			v.Snapshot += ", cut " + sn.CreationTime.UTC().Format(time.RFC3339)
		}
	}
	if s.SandboxNamespace != "" {
		state := "removed"
		if !s.SandboxRemoved {
			state = "not yet removed"
			if s.SandboxExpiry != nil {
				state = "kept until " + s.SandboxExpiry.UTC().Format(time.RFC3339)
			}
		}
		v.Sandbox = s.SandboxNamespace + " (" + state + ")"
	}
	if z := s.Size; z != nil {
		var parts []string
		if z.DatabaseBytes != nil {
			parts = append(parts, "databases "+report.Bytes(*z.DatabaseBytes))
		}
		if z.CapacityBytes != nil {
			parts = append(parts, "volume "+report.Bytes(*z.CapacityBytes))
		}
		if z.ReadBytes != nil {
			parts = append(parts, "checks read "+report.Bytes(*z.ReadBytes))
		}
		v.Size = strings.Join(parts, ", ")
	}
	return v
}
