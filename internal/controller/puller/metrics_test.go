package puller

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kip-image-puller/kip/internal/status"
)

func TestRecordReport(t *testing.T) {
	report := status.Report{
		Images: []status.Image{{Name: "a"}, {Name: "b"}},
		Nodes: []status.Node{
			{Name: "n1", Selected: true, Images: map[string]status.Cell{"a": {State: status.Cached}, "b": {State: status.Cached}}},
			{Name: "n2", Selected: true, Images: map[string]status.Cell{"a": {State: status.Cached}, "b": {State: status.Failed, Reason: "ErrImagePull"}}},
			{Name: "n3", Selected: false},
		},
		Summary: status.Summary{NodesSelected: 2, NodesWarm: 1, Failing: []status.Failure{{Node: "n2", Image: "b", Reason: "ErrImagePull"}}},
	}
	recordReport(report)
	checks := []struct {
		name      string
		got, want float64
	}{
		{"images wanted", testutil.ToFloat64(imagesWanted), 2},
		{"nodes selected", testutil.ToFloat64(nodesSelected), 2},
		{"nodes warm", testutil.ToFloat64(nodesWarm), 1},
		{"cached on n1", testutil.ToFloat64(imagesCached.WithLabelValues("n1")), 2},
		{"cached on n2", testutil.ToFloat64(imagesCached.WithLabelValues("n2")), 1},
		{"b failing on n2", testutil.ToFloat64(imageFailing.WithLabelValues("n2", "b", "ErrImagePull")), 1},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if n := testutil.CollectAndCount(imagesCached); n != 2 {
		t.Errorf("kip_images_cached has %d series, want 2 (not-selected nodes left out)", n)
	}

	// The next report replaces the series: a recovered image leaves no stale 1.
	report.Summary.Failing = nil
	report.Nodes[1].Images["b"] = status.Cell{State: status.Cached}
	recordReport(report)
	if n := testutil.CollectAndCount(imageFailing); n != 0 {
		t.Errorf("kip_image_failing has %d series after recovery, want 0", n)
	}
}
