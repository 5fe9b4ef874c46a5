package server

import (
	"embed"
	"html/template"
)

// templateFiles are the status page's templates: layout.html (the page's
// frame, the login form and error pages) and drill.html (the overview, a
// drill's page and a run's page).
//
//go:embed templates/*.html
var templateFiles embed.FS

var templates = template.Must(template.ParseFS(templateFiles, "templates/*.html"))
