package server

import (
	"fmt"
	"html"
	"strings"
)

// The status page is written by the functions of pages.go through an
// htmlPage, not by html/template: executing a template looks a method up by
// a name known only at run time, which makes the Go linker keep every
// exported method of every type in the binary (a third of drillerd's size,
// and of its memory when idle, would be code never run).

// markup is HTML that drillerd wrote itself (a chart, a part of a page):
// an htmlPage writes it as it is.
type markup string

// htmlPage builds a page of HTML.
type htmlPage struct{ b strings.Builder }

// printf writes format with args, format being markup and every argument a
// value: a string (or anything printed with %v or %s) is escaped for HTML
// text and for a double-quoted attribute's value alike; a markup is written
// as it is; a number or a bool is written as Fprintf writes it.
func (p *htmlPage) printf(format string, args ...any) {
	for i, a := range args {
		switch a := a.(type) {
		case markup:
			args[i] = string(a)
		case int, int64, float64, bool:
		default:
			args[i] = html.EscapeString(fmt.Sprint(a))
		}
	}
	fmt.Fprintf(&p.b, format, args...)
}

// write writes s, which is markup.
func (p *htmlPage) write(s markup) { p.b.WriteString(string(s)) }

// String is the page.
func (p *htmlPage) String() string { return p.b.String() }

// classIf is ` class="name"` when cond holds, else "".
func classIf(cond bool, name string) markup {
	if !cond {
		return ""
	}
	return markup(` class="` + html.EscapeString(name) + `"`)
}
