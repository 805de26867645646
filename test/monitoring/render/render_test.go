package render

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// scrapesOf writes n scrapes, 5 s apart, of a controller warming 3 nodes
// with 2 images: one node a scrape, node2 failing one image for a while,
// and one warm-up observed; then reads them back.
func scrapesOf(t *testing.T, n int) []Scrape {
	t.Helper()
	dir := t.TempDir()
	start := time.Unix(1_800_000_000, 0)
	for i := range n {
		warm := min(i, 3)
		var b strings.Builder
		b.WriteString("# target namespace=kip pod=kip-controller-0\n")
		fmt.Fprintf(&b, "# TYPE kip_nodes_warm gauge\nkip_nodes_warm %d\n", warm)
		fmt.Fprintf(&b, "# TYPE kip_nodes_selected gauge\nkip_nodes_selected 3\n")
		fmt.Fprintf(&b, "# TYPE kip_images_wanted gauge\nkip_images_wanted 2\n")
		b.WriteString("# TYPE kip_images_cached gauge\n")
		for node := 1; node <= 3; node++ {
			fmt.Fprintf(&b, "kip_images_cached{node=\"node%d\"} %d\n", node, min(max(i-node+2, 0), 2))
		}
		if i >= 2 && i < 6 {
			b.WriteString("# TYPE kip_image_failing gauge\nkip_image_failing{image=\"big\",node=\"node2\",reason=\"ErrImagePull\"} 1\n")
		}
		observed := 0
		if i >= 3 {
			observed = 1
		}
		fmt.Fprintf(&b, "# TYPE kip_warm_duration_seconds histogram\nkip_warm_duration_seconds_bucket{le=\"10\"} 0\nkip_warm_duration_seconds_bucket{le=\"20\"} %d\nkip_warm_duration_seconds_bucket{le=\"+Inf\"} %d\nkip_warm_duration_seconds_sum %d\nkip_warm_duration_seconds_count %d\n", observed, observed, 15*observed, observed)
		fmt.Fprintf(&b, "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %d\n", 40<<20+i<<20)
		at := start.Add(time.Duration(i) * 5 * time.Second)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%d.prom", at.UnixMilli())), []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s, err := ReadScrapes(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestEvaluateRunsTheDashboardsQueries(t *testing.T) {
	d, err := LoadDashboard(filepath.Join("..", "..", "..", "deploy", "monitoring", "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	results, err := Evaluate(context.Background(), d, scrapesOf(t, 10), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	byTitle := map[string]Result{}
	for _, r := range results {
		byTitle[r.Panel.Title] = r
	}
	last := func(panel, legend string) float64 {
		t.Helper()
		for _, s := range byTitle[panel].Series {
			if s.Legend == legend {
				return s.V[len(s.V)-1]
			}
		}
		t.Fatalf("panel %q: no series %q in %+v", panel, legend, byTitle[panel].Series)
		return 0
	}
	tests := []struct {
		panel, legend string
		want          float64
	}{
		{"Warm nodes", "warm kip", 3},
		{"Warm nodes", "selected kip", 3},
		{"Images cached per node", "node3", 2},
		{"Images cached per node", "configured", 2},
		{"Failing images by node and reason", "big on node2 (ErrImagePull)", 1},
		{"Controller memory", "kip-controller-0", 49 << 20},
	}
	for _, tt := range tests {
		if got := last(tt.panel, tt.legend); got != tt.want {
			t.Errorf("%s, %s: last value %v, want %v", tt.panel, tt.legend, got, tt.want)
		}
	}
	for _, s := range byTitle["Failing images by node and reason"].Series {
		if n := len(s.T); n != 4 || s.T[0] != 10 || s.T[n-1] != 25 {
			t.Errorf("failing %s at %v; want from 10 s to 25 s, gone once it left the scrapes", s.Legend, s.T)
		}
	}
	if r := byTitle["Pull durations (agent mode)"]; len(r.Series) != 0 {
		t.Errorf("pull durations drawn from no agent data: %+v", r.Series)
	}
	if r := byTitle["Warm-up times"]; r.Points() == 0 {
		t.Error("the warm-up observed is not drawn")
	}

	var out bytes.Buffer
	if err := Draw(&out, d, results, "a test"); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&out)
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 1000 || b.Dy() < 800 {
		t.Errorf("a %dx%d rendering; want the 24-column grid at least 1000x800", b.Dx(), b.Dy())
	}
}

func TestReadScrapesNamesWhatIsWrong(t *testing.T) {
	tests := []struct{ file, content, want string }{
		{"notatime.prom", "# target a=b\n", "<unix milliseconds>.prom"},
		{"1000.prom", "kip_nodes_warm 1\n", "# target"},
		{"1000.prom", "# target namespace\n", "name=value"},
	}
	for _, tt := range tests {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, tt.file), []byte(tt.content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadScrapes(dir); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s %q: error %v, want one naming %q", tt.file, tt.content, err, tt.want)
		}
	}
	if _, err := Evaluate(context.Background(), Dashboard{}, nil, time.Second); err == nil {
		t.Error("no error for no scrapes")
	}
}
