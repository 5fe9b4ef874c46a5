package server

import (
	"io"
	"net/http"
	"sort"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
)

// The status page, in three views, each readable without JavaScript:
//
//	GET  /                          every drill the viewer may list: its last result, RTO and RPO
//	                                against the targets, the results of its last 30 runs as a strip,
//	                                RTO and RPO of those runs as charts with the target line, the last
//	                                run's checks and phase waterfall, and a "Run now" button
//	GET  /drills/{ns}/{name}        one drill: the same, the RTO forecast, and every run kept
//	GET  /runs/{ns}/{name}          one run: its verdict, timings, checks and waterfall
//	POST /drills/{ns}/{name}/runs   "Run now" (runnow.go)
//
// Links go from a drill to its runs and from a run to its drill. The
// viewer signs in as login.go says; a namespace's drills are shown to a
// viewer who may list restoredrills and drillruns there.

// page serves GET /.
func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	v, ok := s.identify(w, r)
	if !ok {
		return
	}
	drills, runs, ok := s.listAll(w, r)
	if !ok {
		return
	}
	acc := s.accessOf(r.Context(), v)
	data := s.pageData(v, "Restore drills")
	for _, d := range drills {
		if !acc.mayRead(d.Namespace) {
			data.Hidden++
			continue
		}
		data.Drills = append(data.Drills, s.drillView(d, runs[d.Namespace+"/"+d.Name], acc, v))
	}
	render(w, http.StatusOK, drillsPage(data, true))
}

// drillPage serves GET /drills/{ns}/{name}.
func (s *Server) drillPage(w http.ResponseWriter, r *http.Request) {
	v, ok := s.identify(w, r)
	if !ok {
		return
	}
	ref, err := parseObjectRef(r.PathValue("ns"), r.PathValue("name"), "RestoreDrill")
	if err != nil {
		s.errorPage(w, http.StatusBadRequest, err.Error())
		return
	}
	acc := s.accessOf(r.Context(), v)
	if !acc.mayRead(ref.Namespace) {
		s.errorPage(w, http.StatusForbidden, v.user.Username+" may not list restoredrills and drillruns in namespace "+ref.Namespace)
		return
	}
	drill := &drillsv1.RestoreDrill{}
	if err := s.Client.Get(r.Context(), types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}, drill); err != nil {
		s.readError(w, err, "RestoreDrill", ref)
		return
	}
	list := &drillsv1.DrillRunList{}
	if err := s.Client.List(r.Context(), list, client.InNamespace(ref.Namespace)); err != nil {
		s.errorPage(w, http.StatusServiceUnavailable, "cannot list DrillRuns now; try again")
		return
	}
	var runs []drillsv1.DrillRun
	for _, run := range list.Items {
		if run.Spec.DrillName == drill.Name {
			runs = append(runs, run)
		}
	}
	data := s.pageData(v, "Restore drill "+ref.Namespace+"/"+ref.Name)
	view := s.drillView(*drill, newestFirst(runs), acc, v)
	view.Detail = true
	data.Drills = []drillView{view}
	render(w, http.StatusOK, drillsPage(data, false))
}

// runPage serves GET /runs/{ns}/{name}.
func (s *Server) runPage(w http.ResponseWriter, r *http.Request) {
	v, ok := s.identify(w, r)
	if !ok {
		return
	}
	ref, err := parseObjectRef(r.PathValue("ns"), r.PathValue("name"), "DrillRun")
	if err != nil {
		s.errorPage(w, http.StatusBadRequest, err.Error())
		return
	}
	if !s.accessOf(r.Context(), v).mayRead(ref.Namespace) {
		s.errorPage(w, http.StatusForbidden, v.user.Username+" may not list restoredrills and drillruns in namespace "+ref.Namespace)
		return
	}
	run := &drillsv1.DrillRun{}
	if err := s.Client.Get(r.Context(), types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}, run); err != nil {
		s.readError(w, err, "DrillRun", ref)
		return
	}
	data := s.pageData(v, "Drill run "+ref.Namespace+"/"+ref.Name)
	rv := runViewOf(*run, true)
	data.Run = &rv
	render(w, http.StatusOK, runPage(data))
}

// listAll lists every drill, in name order, and every run by drill
// (namespace/name), newest first.
func (s *Server) listAll(w http.ResponseWriter, r *http.Request) ([]drillsv1.RestoreDrill, map[string][]drillsv1.DrillRun, bool) {
	drills := &drillsv1.RestoreDrillList{}
	runs := &drillsv1.DrillRunList{}
	if err := s.Client.List(r.Context(), drills); err != nil {
		s.errorPage(w, http.StatusServiceUnavailable, "cannot list RestoreDrills now; try again")
		return nil, nil, false
	}
	if err := s.Client.List(r.Context(), runs); err != nil {
		s.errorPage(w, http.StatusServiceUnavailable, "cannot list DrillRuns now; try again")
		return nil, nil, false
	}
	sort.Slice(drills.Items, func(i, j int) bool {
		a, b := drills.Items[i], drills.Items[j]
		return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
	})
	byDrill := map[string][]drillsv1.DrillRun{}
	for _, run := range runs.Items {
		key := run.Namespace + "/" + run.Spec.DrillName
		byDrill[key] = append(byDrill[key], run)
	}
	for key, rs := range byDrill {
		byDrill[key] = newestFirst(rs)
	}
	return drills.Items, byDrill, true
}

// newestFirst sorts runs by creation, newest first.
func newestFirst(runs []drillsv1.DrillRun) []drillsv1.DrillRun {
	sort.SliceStable(runs, func(i, j int) bool {
		a, b := runs[i], runs[j]
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return b.CreationTimestamp.Before(&a.CreationTimestamp)
		}
		return a.Name > b.Name
	})
	return runs
}

func (s *Server) readError(w http.ResponseWriter, err error, kind string, ref objectRef) {
	if apierrors.IsNotFound(err) {
		s.errorPage(w, http.StatusNotFound, "no "+kind+" "+ref.Name+" in namespace "+ref.Namespace)
		return
	}
	s.errorPage(w, http.StatusServiceUnavailable, "cannot read the "+kind+" now; try again")
}

func (s *Server) pageData(v viewer, title string) pageData {
	return pageData{Title: title, User: v.user.Username, Now: s.now().UTC().Format(time.RFC3339), SignOut: s.Auth != nil}
}

// render answers code with page.
func render(w http.ResponseWriter, code int, page string) {
	htmlHeaders(w)
	w.WriteHeader(code)
	_, _ = io.WriteString(w, page)
}

// errorPage answers code with msg, and a way back.
func (s *Server) errorPage(w http.ResponseWriter, code int, msg string) {
	render(w, code, errorPage(errorData{Code: code, Status: http.StatusText(code), Message: msg, SignOut: s.Auth != nil}))
}

type errorData struct {
	Code            int
	Status, Message string
	SignOut         bool
}
