package main

import (
	"os"
	"strings"
	"testing"

	"github.com/kip-image-puller/kip/internal/agent/report"
	"github.com/kip-image-puller/kip/internal/config"
)

func TestMetricValue(t *testing.T) {
	text := `# HELP rest_client_requests_total Number of HTTP requests.
rest_client_requests_total{code="200",host="127.0.0.1:16443",method="GET"} 120
rest_client_requests_total{code="201",host="127.0.0.1:16443",method="POST"} 3
rest_client_requests_total{code="200",host="127.0.0.1:16443",method="PATCH"} 4
rest_client_requests_total_other{method="POST"} 100
kip_nodes_warm 1761
kip_image_failing{image="img1",node="fake-0001",reason="ErrImagePull"} 1
`
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"rest_client_requests_total", nil, 127},
		{"rest_client_requests_total", []string{`method="POST"`}, 3},
		{"rest_client_requests_total", []string{`method="DELETE"`}, 0},
		{"kip_nodes_warm", nil, 1761},
		{"kip_nodes", nil, 0},
		{"kip_image_failing", []string{`node="fake-0001"`, `image="img1"`}, 1},
		{"kip_image_failing", []string{`node="fake-0002"`, `image="img1"`}, 0},
	} {
		if got := metricValue(text, c.name, c.labels...); got != c.want {
			t.Errorf("metricValue(%s, %v) = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

func TestGrowth(t *testing.T) {
	for _, c := range []struct {
		a, b, k float64
		want    string
	}{
		{10, 11, 4, "flat"},
		{10, 40, 4, "linear"},
		{10, 32, 4, "linear"},
		{10, 20, 4, "less than linear"},
		{10, 80, 4, "faster than linear"},
		{0, 5, 4, "-"},
	} {
		if got := growth(c.a, c.b, c.k); got != c.want {
			t.Errorf("growth(%v, %v, %v) = %q, want %q", c.a, c.b, c.k, got, c.want)
		}
	}
}

// The Stages file and the simulated agents follow one rule of node names.
func TestNodeOutcome(t *testing.T) {
	if got := warmNodes(100); got != 88 {
		t.Errorf("warmNodes(100) = %d, want 88 (10 pulling, 2 failing)", got)
	}
	images := []config.Image{{Name: "img1", Ref: "r/img1@sha256:1"}, {Name: "img2", Ref: "r/img2@sha256:2"}}
	for node, want := range map[string][]report.State{
		"fake-0001": {report.StateCached, report.StateCached},
		"fake-0007": {report.StateCached, report.StatePulling},
		"fake-0013": {report.StateFailed, report.StateCached},
		"fake-0042": {report.StateFailed, report.StateCached},
	} {
		v, err := agentReport(node, images)
		if err != nil {
			t.Fatal(err)
		}
		r, err := report.Decode(v)
		if err != nil {
			t.Fatal(err)
		}
		for i, img := range r.Images {
			if img.State != want[i] || img.Image != images[i].Ref {
				t.Errorf("%s: image %d is %s (%s), want %s", node, i, img.State, img.Image, want[i])
			}
		}
	}
	stages := readStages(t)
	for _, s := range []string{`hasSuffix "7" $node`, `hasSuffix "13" $node`, `hasSuffix "42" $node`} {
		if !strings.Contains(stages, s) {
			t.Errorf("hack/scale/kwok-stages.yaml does not decide by %s", s)
		}
	}
}

func readStages(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../hack/scale/kwok-stages.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
