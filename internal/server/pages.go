package server

// The status page's pages: the overview, a drill's page, a run's page, the
// login form and the error pages, laid out from what views.go worked out.

// pageStyle is every page's style sheet.
const pageStyle = `<style>
body{font-family:system-ui,sans-serif;margin:1.5rem auto;max-width:72rem;padding:0 1rem;color:#222;line-height:1.35}
a{color:#1f5fbf}h1{margin-bottom:.2rem}h1 a{color:inherit;text-decoration:none}
h2{margin:2rem 0 .5rem;padding-top:1rem;border-top:2px solid #ddd}h3{margin:1rem 0 .4rem}
table{border-collapse:collapse;margin-bottom:.6rem}th,td{padding:.3rem .6rem;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
th{font-weight:600;color:#444}
.Succeeded{color:#17803d;font-weight:600}.Failed{color:#c0262d;font-weight:600}.Error{color:#b35c00;font-weight:600}
.missed{color:#c0262d}.msg{color:#555;font-size:.9rem;max-width:60rem}small{color:#666;font-weight:normal}
.who{margin:.3rem 0 1rem;color:#444}form.inline{display:inline}code{background:#f3f3f3;padding:0 .2rem}
.strip{display:flex;gap:2px;align-items:center;margin:.3rem 0 .6rem}.strip .label{margin-right:.5rem;color:#444;font-size:.9rem}
.strip .cell{display:inline-block;width:12px;height:20px;border-radius:2px;background:#888}
.strip .cell.Succeeded{background:#17803d}.strip .cell.Failed{background:#c0262d}.strip .cell.Error{background:#b35c00}
.charts{display:flex;flex-wrap:wrap;gap:1.5rem}.charts figure{margin:0}.charts figcaption{font-size:.9rem;color:#444}
.forecast{font-size:.9rem;color:#444}.forecast.at-risk{color:#c0262d;font-weight:600}
table.checks td.value{font-family:ui-monospace,monospace;font-size:.85rem}
.pass{color:#17803d;font-weight:600}.fail{color:#c0262d;font-weight:600}
.run-now{margin:.8rem 0}.run-now button{font-size:1rem;padding:.3rem 1rem}.run-now .why{color:#666;font-size:.9rem;margin-left:.5rem}
.nodata{color:#666;font-size:.9rem}
</style>`

// head begins a page titled "drillerd: title" ("restore drills" when title
// is empty).
func head(p *htmlPage, title string) {
	if title == "" {
		title = "restore drills"
	}
	p.printf(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>drillerd: %s</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
%s</head><body>
<h1><a href="/">Restore drills</a></h1>
`, title, markup(pageStyle))
}

// foot ends a page.
func foot(p *htmlPage) { p.write("</body></html>\n") }

// who is the line saying who is signed in.
func who(p *htmlPage, d pageData) {
	p.printf(`<div class="who">Signed in as %s · %s`, d.User, d.Now)
	if d.Hidden != 0 {
		p.printf(` · drills in namespaces you may not list are hidden (%d)`, d.Hidden)
	}
	p.write("\n")
	if d.SignOut {
		p.write(` · <form class="inline" method="post" action="/logout"><button type="submit">Sign out</button></form>`)
	}
	p.write("</div>\n")
}

// refusedPage says why a request was refused, with a way to sign in.
func refusedPage(msg string) string {
	var p htmlPage
	head(&p, "")
	p.printf(`<p class="Failed" id="error">%s</p>
<p><a href="/login">Sign in</a></p>
`, msg)
	foot(&p)
	return p.String()
}

// errorPage says what went wrong, with a way back.
func errorPage(d errorData) string {
	var p htmlPage
	head(&p, d.Status)
	p.printf(`<p class="Failed" id="error">%d %s: %s</p>
<p><a href="/">All drills</a>`, d.Code, d.Status, d.Message)
	if d.SignOut {
		p.write(` · <a href="/login">Sign in again</a>`)
	}
	p.write("</p>\n")
	foot(&p)
	return p.String()
}

// loginPage is the login form.
func loginPage(d loginData) string {
	var p htmlPage
	head(&p, "")
	if d.Error != "" {
		p.printf(`<p class="Failed" id="error">%s</p>`+"\n", d.Error)
	}
	p.printf(`<form id="login" method="post" action="/login">
<p><label for="token">Kubernetes token for audience <code>%s</code></label><br>
<input id="token" name="token" type="password" autocomplete="off" required autofocus size="60"></p>
<p><button type="submit">Sign in</button></p>
</form>
<p>Mint a token with <code>kubectl create token -n NAMESPACE SERVICEACCOUNT --audience %s</code>.
The page shows the drills of the namespaces where the token's user may list restoredrills and drillruns.
The browser keeps the token in a cookie for %s or until you sign out; tokens in URLs are refused.</p>
`, d.Audience, d.Audience, d.MaxAge)
	foot(&p)
	return p.String()
}

// drillsPage shows the drills of d: on the overview every drill in brief,
// on a drill's own page that drill in full, with a way back.
func drillsPage(d pageData, overview bool) string {
	var p htmlPage
	title := d.Title
	if overview {
		title = ""
	}
	head(&p, title)
	who(&p, d)
	switch {
	case !overview:
		p.write(`<p><a href="/">All drills</a></p>` + "\n")
	case len(d.Drills) == 0:
		p.write("<p>No RestoreDrills yet.</p>\n")
	}
	for _, dr := range d.Drills {
		drillSection(&p, dr)
	}
	foot(&p)
	return p.String()
}

// result is a run's result, with its reason in brackets when it has one.
func result(p *htmlPage, res, reason string) {
	p.printf("%s", res)
	if reason != "" {
		p.printf(" (%s)", reason)
	}
}

// drillSection is one drill: the overview shows it in brief, its own page
// in full.
func drillSection(p *htmlPage, d drillView) {
	p.printf(`<section class="drill" id="%s-%s">`+"\n<h2>", d.Namespace, d.Name)
	if d.Detail {
		p.printf("%s/%s", d.Namespace, d.Name)
	} else {
		p.printf(`<a href="%s">%s/%s</a>`, d.Link, d.Namespace, d.Name)
	}
	p.printf(`</h2>
<table class="summary"><tr><th>Schedule</th><th>Last result</th><th>RTO / target</th><th>RPO / target</th><th>Last success</th><th>Next run</th></tr>
<tr><td>%s</td><td class="%s">`, d.Schedule, d.Result)
	result(p, d.Result, d.Reason)
	p.printf("</td>\n<td%s>%s</td><td%s>%s</td>\n<td>%s</td><td>%s</td></tr></table>\n",
		classIf(!d.RTOMet, "missed"), d.RTO, classIf(!d.RPOMet, "missed"), d.RPO, d.LastSuccess, d.NextRun)
	if len(d.Strip) > 0 {
		p.printf(`<div class="strip" role="list" aria-label="results of the last %d runs, oldest first"><span class="label">%s</span>`, len(d.Strip), d.StripLabel)
		for _, c := range d.Strip {
			if c.Link != "" {
				p.printf(`<a class="cell %s" role="listitem" href="%s" title="%s"></a>`, c.Result, c.Link, c.Title)
			} else {
				p.printf(`<span class="cell %s" role="listitem" title="%s"></span>`, c.Result, c.Title)
			}
		}
		p.printf(`</div>
<div class="charts">
<figure>%s<figcaption>%s</figcaption></figure>
<figure>%s<figcaption>%s</figcaption></figure>
</div>
`, d.RTOChart, d.RTOCaption, d.RPOChart, d.RPOCaption)
	} else {
		p.write(`<p class="nodata">No run has finished yet: no RTO or RPO to chart.</p>` + "\n")
	}
	if f := d.Forecast; f != nil {
		class := "forecast"
		if f.AtRisk {
			class += " at-risk"
		}
		p.printf(`<p class="%s">%s</p>`+"\n", class, f.Text)
	}
	r := d.RunNow
	p.printf(`<form class="run-now" method="post" action="%s">
<input type="hidden" name="csrf" value="%s">
`, r.Action, r.Token)
	if r.Allowed {
		p.write(`<button type="submit">Run now</button>`)
	} else {
		p.printf(`<button type="submit" disabled>Run now</button><span class="why">%s</span>`, r.Why)
	}
	p.write("\n</form>\n")
	if l := d.Last; l != nil {
		p.printf(`<h3>Last run: <a href="%s">%s</a> <small>%s · %s</small> <span class="%s">`, l.Link, l.Name, l.Trigger, l.Started, l.Result)
		result(p, l.Result, l.Reason)
		p.write("</span></h3>\n")
		if l.Message != "" {
			p.printf(`<p class="msg">%s</p>`+"\n", l.Message)
		}
		checks(p, l.Checks)
		p.printf("%s\n", l.Waterfall)
	}
	if !d.Detail {
		p.printf(`<p><a href="%s">All runs of %s</a></p>`+"\n</section>\n", d.Link, d.Name)
		return
	}
	p.printf("<h3>Runs kept (%d)</h3>\n", len(d.Runs))
	if len(d.Runs) == 0 {
		p.write(`<p class="nodata">No run is kept.</p>` + "\n</section>\n")
		return
	}
	p.write(`<table class="runs"><tr><th>Run</th><th>Trigger</th><th>Started</th><th>Phase</th><th>Result</th><th>RTO</th><th>RPO</th></tr>` + "\n")
	for _, r := range d.Runs {
		p.printf(`<tr><td><a href="%s">%s</a></td><td>%s</td><td>%s</td><td>%s</td>`+"\n"+`<td class="%s">`, r.Link, r.Name, r.Trigger, r.Started, r.Phase, r.Result)
		result(p, r.Result, r.Reason)
		p.printf("</td><td>%s</td><td>%s</td></tr>\n", r.RTO, r.RPO)
	}
	p.write("</table>\n</section>\n")
}

// checks is a run's checks as a table, nothing when it has none.
func checks(p *htmlPage, rows []checkRow) {
	if len(rows) == 0 {
		return
	}
	p.write(`<table class="checks"><tr><th></th><th>Check</th><th>Database</th><th>Took</th><th>Value</th><th>Expected</th></tr>` + "\n")
	for _, c := range rows {
		class, verdict := "fail", "FAIL"
		if c.Passed {
			class, verdict = "pass", "PASS"
		}
		p.printf(`<tr><td class="%s">%s</td><td>%s</td><td>%s</td><td>%s</td>`+"\n"+`<td class="value">%s`, class, verdict, c.Name, c.Database, c.Seconds, c.Value)
		if c.Message != "" {
			p.printf(`<div class="msg">%s</div>`, c.Message)
		}
		p.printf("</td><td>%s</td></tr>\n", c.Expected)
	}
	p.write("</table>")
}

// runPage shows one run.
func runPage(d pageData) string {
	var p htmlPage
	head(&p, d.Title)
	who(&p, d)
	if r := d.Run; r != nil {
		p.printf(`<p><a href="/">All drills</a> · drill <a href="%s">%s/%s</a></p>
<h2>Run %s/%s <span class="%s">`, r.DrillLink, r.Namespace, r.Drill, r.Namespace, r.Name, r.Result)
		result(&p, r.Result, r.Reason)
		p.printf(`</span></h2>
<table class="summary">
<tr><th>Drill</th><td><a href="%s">%s</a></td></tr>
<tr><th>Trigger</th><td>%s</td></tr>
<tr><th>Phase</th><td>%s</td></tr>
<tr><th>Started</th><td>%s</td></tr>
<tr><th>Completed</th><td>%s</td></tr>
`, r.DrillLink, r.Drill, r.Trigger, r.Phase, r.Started, r.Completed)
		for _, row := range []struct{ name, value string }{
			{"RTO / target", r.RTO}, {"RPO / target", r.RPO}, {"Snapshot", r.Snapshot}, {"Sandbox", r.Sandbox}, {"Size", r.Size},
		} {
			if row.value != "" {
				p.printf("<tr><th>%s</th><td>%s</td></tr>\n", row.name, row.value)
			}
		}
		p.write("</table>\n")
		if r.Message != "" {
			p.printf(`<p class="msg">%s</p>`+"\n", r.Message)
		}
		if len(r.Checks) > 0 {
			p.write("<h3>Checks</h3>")
			checks(&p, r.Checks)
			p.write("\n")
		}
		if r.Waterfall != "" {
			p.printf("<h3>Phases</h3>%s\n", r.Waterfall)
		}
	}
	foot(&p)
	return p.String()
}
