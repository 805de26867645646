package puller

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/kip-image-puller/kip/internal/agent/report"
	"github.com/kip-image-puller/kip/internal/status"
)

var update = flag.Bool("update", false, "rewrite deploy/monitoring/metrics.txt")

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

func TestPullDurationsCountOnce(t *testing.T) {
	pullSeconds.Reset()
	since := time.Unix(100, 0)
	later := time.Unix(200, 0)
	report := func(cell status.Cell) status.Report {
		return status.Report{Nodes: []status.Node{{Name: "n1", Selected: true, Images: map[string]status.Cell{"a": cell,
			"held": {State: status.Cached, Since: &since}}}}}
	}
	log := pullLog{}
	log.observe(report(status.Cell{State: status.Pulling}))
	for range 3 { // the same pull, read three times
		log.observe(report(status.Cell{State: status.Cached, Since: &since, PullSeconds: 3}))
	}
	log.observe(report(status.Cell{State: status.Cached, Since: &later, PullSeconds: 7})) // pulled again (healed)
	if n := testutil.CollectAndCount(pullSeconds); n != 1 {
		t.Fatalf("%d series, want 1 (node n1)", n)
	}
	h := &dto.Metric{}
	if err := pullSeconds.WithLabelValues("n1").(prometheus.Histogram).Write(h); err != nil {
		t.Fatal(err)
	}
	if got := h.GetHistogram(); got.GetSampleCount() != 2 || got.GetSampleSum() != 10 {
		t.Errorf("count %d, sum %v; want 2 pulls of 3 s and 7 s", got.GetSampleCount(), got.GetSampleSum())
	}
	log.observe(status.Report{})
	if len(log) != 0 {
		t.Errorf("pulls of images gone from the report are kept: %v", log)
	}
}

func TestAgentGauges(t *testing.T) {
	recordReport(status.Report{Nodes: []status.Node{
		{Name: "n1", Selected: true, Agent: &status.AgentNode{Heals: 4, Disk: &report.Disk{CachedBytes: 3 << 30, PinnedBytes: 2 << 30}}},
		{Name: "n2", Selected: true},
		{Name: "n3", Selected: true, Agent: &status.AgentNode{}},
	}})
	if got := testutil.ToFloat64(agentHeals.WithLabelValues("n1")); got != 4 {
		t.Errorf("n1 heals %v, want 4", got)
	}
	if n := testutil.CollectAndCount(agentHeals); n != 2 {
		t.Errorf("%d series, want 2: a node without an agent has none", n)
	}
	if cached, pinned := testutil.ToFloat64(agentCachedBytes.WithLabelValues("n1")), testutil.ToFloat64(agentPinnedBytes.WithLabelValues("n1")); cached != 3<<30 || pinned != 2<<30 {
		t.Errorf("n1 cached %v, pinned %v bytes", cached, pinned)
	}
	if n := testutil.CollectAndCount(agentPinnedBytes); n != 1 {
		t.Errorf("%d pinned-bytes series, want 1: an agent that measured nothing has none", n)
	}
}

// TestConfigurationInvalidGauge: 1 while the configuration is refused, 0
// once a valid one is applied.
func TestConfigurationInvalidGauge(t *testing.T) {
	r := &reconciler{}
	r.reportInvalid(nil, errors.New("IMAGES: value \"\": at least one image"), "f1")
	if got := testutil.ToFloat64(configInvalid); got != 1 {
		t.Errorf("after an invalid configuration: %v", got)
	}
	r.reportValid(nil, nil)
	if got := testutil.ToFloat64(configInvalid); got != 0 {
		t.Errorf("after a valid one: %v", got)
	}
}

// TestMetricsPassPromlintAndAreListed lints every kip metric with
// client_golang's promlint, and checks deploy/monitoring/metrics.txt, the
// list the dashboard and the alerts are checked against (test/monitoring),
// names each metric the controller serves, with its type: `go test
// ./internal/controller/puller -run TestMetrics -update` rewrites it.
func TestMetricsPassPromlintAndAreListed(t *testing.T) {
	// A vector shows in a scrape once it has a child.
	imagesCached.WithLabelValues("lint")
	imageFailing.WithLabelValues("lint", "lint", "ErrImagePull")
	pullSeconds.WithLabelValues("lint")
	agentCachedBytes.WithLabelValues("lint")
	agentPinnedBytes.WithLabelValues("lint")
	agentHeals.WithLabelValues("lint")
	t.Cleanup(func() {
		imagesCached.DeleteLabelValues("lint")
		imageFailing.DeleteLabelValues("lint", "lint", "ErrImagePull")
		pullSeconds.DeleteLabelValues("lint")
		agentHeals.DeleteLabelValues("lint")
	})
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var ours []*dto.MetricFamily
	var lines []string
	for _, f := range families {
		name := f.GetName()
		// The Go runtime's go_* change with each Go release, and
		// controller-runtime's show once its controllers ran: the
		// dashboard names neither.
		if strings.HasPrefix(name, "kip_") || strings.HasPrefix(name, "process_") {
			lines = append(lines, name+" "+strings.ToLower(f.GetType().String()))
		}
		if strings.HasPrefix(name, "kip_") {
			ours = append(ours, f)
		}
	}
	if len(ours) < 14 {
		t.Errorf("%d kip metrics gathered", len(ours))
	}
	problems, err := promlint.NewWithMetricFamilies(ours).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	sort.Strings(lines)
	got := "# The puller's metrics and the process's, as the controller serves them\n" +
		"# (name, type): the dashboard and the alerts in this folder may name only\n" +
		"# these.\n" + strings.Join(lines, "\n") + "\n"
	path := filepath.Join("..", "..", "..", "deploy", "monitoring", "metrics.txt")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != got {
		t.Errorf("%s is stale (rewrite it with -update):\n%s", path, got)
	}
}
