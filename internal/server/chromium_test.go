package server

import (
	"context"
	"flag"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// updateScreenshots rewrites docs/status-page*.png from what Chromium
// draws: go test ./internal/server -run TestStatusPageInChromium -update-screenshots
var updateScreenshots = flag.Bool("update-screenshots", false, "write the status page's screenshots to docs/")

// chromium runs Debian's headless Chromium once on url with args (e.g.
// --screenshot=FILE or --dump-dom) and returns its standard output.
func chromium(t *testing.T, url string, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed (make deps installs Debian's chromium)")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	args = append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir()}, append(args, url)...)
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// TestStatusPageInChromium renders the overview, a drill's page and a run's
// page in a real browser, as a viewer signed in with the Authorization
// header would see them: the DOM Chromium builds has the charts, the strip
// and the form, and the screenshots are drawn (not blank, the results'
// colours in them). With -update-screenshots they go to docs/ for README.
func TestStatusPageInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	srv := newTestServer(t, ordersHistory()...)
	signedIn := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Set("Authorization", "Bearer good")
		srv.Handler().ServeHTTP(w, r)
	})
	web := httptest.NewServer(signedIn)
	defer web.Close()

	dom := chromium(t, web.URL+"/", "--dump-dom")
	page := parse(t, dom)
	orders := byID(t, page, "shop-orders-db")
	if n := len(all(orders, "circle", "point")); n != 2*29 {
		t.Errorf("Chromium's DOM has %d chart points, want 29 RTO and 29 RPO", n)
	}
	if n := len(all(orders, "", "cell")); n != 30 {
		t.Errorf("Chromium's DOM has %d strip entries, want 30", n)
	}
	if f := all(orders, "form", "run-now"); len(f) != 1 || attr(f[0], "action") != "/drills/shop/orders-db/runs" {
		t.Error("Chromium's DOM has no Run now form")
	}

	for _, shot := range []struct{ file, path, height string }{
		{"status-page.png", "/", "1500"},
		{"status-page-drill.png", "/drills/shop/orders-db", "1300"},
		{"status-page-run.png", "/runs/shop/orders-db-33", "1000"},
	} {
		out := filepath.Join(t.TempDir(), shot.file)
		chromium(t, web.URL+shot.path, "--window-size=1200,"+shot.height, "--screenshot="+out)
		f, err := os.Open(out)
		if err != nil {
			t.Fatalf("%s: no screenshot: %v", shot.path, err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: the screenshot is no PNG: %v", shot.path, err)
		}
		if b := img.Bounds(); b.Dx() != 1200 {
			t.Errorf("%s: screenshot %v, want 1200 wide", shot.path, b)
		}
		if !drawn(img, color.RGBA{0x17, 0x80, 0x3d, 0xff}) {
			t.Errorf("%s: the screenshot shows no Succeeded green: the page was not drawn", shot.path)
		}
		if *updateScreenshots {
			data, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join("..", "..", "docs", shot.file), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// drawn reports whether img has pixels of colour c, and many colours.
func drawn(img image.Image, c color.RGBA) bool {
	colours := map[color.RGBA]bool{}
	found := false
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, a := img.At(x, y).RGBA()
			px := color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(bl >> 8), uint8(a >> 8)}
			colours[px] = true
			found = found || px == c
		}
	}
	return found && len(colours) > 20
}
