package puller

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/kip-image-puller/kip/internal/status"
)

// The puller's Prometheus metrics, served on the controller's metrics
// endpoint. Labels are bounded: nodes, configured images, and the kubelet's
// fixed set of reasons; never a free-text message.
var (
	imagesWanted = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "kip_images_wanted",
		Help: "Images configured to be cached on every selected node.",
	})
	nodesSelected = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "kip_nodes_selected",
		Help: "Nodes the image-caching DaemonSet runs on.",
	})
	nodesWarm = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "kip_nodes_warm",
		Help: "Selected nodes that hold every configured image.",
	})
	imagesCached = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "kip_images_cached",
		Help: "Configured images cached on a node.",
	}, []string{"node"})
	imageFailing = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "kip_image_failing",
		Help: "1 for each image failing on a node, with the kubelet's reason.",
	}, []string{"node", "image", "reason"})
	warmSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "kip_warm_duration_seconds",
		Help:    "Time from a DaemonSet change to every selected node holding every image.",
		Buckets: []float64{1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600},
	})
	refreshes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kip_refreshes_total",
		Help: "Digest refreshes of the configured tags.",
	})
	digestChanges = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kip_digest_changes_total",
		Help: "Tags found pointing to a new digest, each rolling the puller pods.",
	})
	configErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kip_configuration_errors_total",
		Help: "Invalid configurations seen (each distinct one counted once).",
	})
	configInvalid = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "kip_configuration_invalid",
		Help: "1 while the configuration is invalid and the last good DaemonSet stays in place, else 0.",
	})
	privilegeRefused = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "kip_privilege_refused",
		Help: "What the configuration asks for and its namespace was not granted (agent mode, node writes, a runtime socket), left out while the rest is applied; 0 when nothing is.",
	})
	imagesInvalid = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "kip_images_invalid",
		Help: "IMAGES entries left out of the DaemonSet because they are invalid; the others are cached.",
	})
	nodeWarmSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "kip_node_warm_seconds",
		Help:    "With NODE_CONDITION=true: time from a node's creation to it holding every image, for each node that joined while the controller ran or still carried WARM_NODE_TAINT.",
		Buckets: []float64{5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600},
	})
	pullSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "kip_pull_duration_seconds",
		Help:    "Agent mode: how long each image pull took, as the node's agent measured it.",
		Buckets: []float64{0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600},
	}, []string{"node"})
	agentHeals = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "kip_agent_heals",
		Help: "Agent mode: images the node's agent pulled again after they disappeared from the runtime, since the agent started.",
	}, []string{"node"})
	agentCachedBytes = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "kip_agent_cached_bytes",
		Help: "Agent mode: bytes the configured images held on the node take, as its runtime reports their sizes.",
	}, []string{"node"})
	agentPinnedBytes = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "kip_agent_pinned_bytes",
		Help: "Agent mode: bytes of the configured images the node's agent pinned, within PIN_BUDGET.",
	}, []string{"node"})
)

func init() {
	metrics.Registry.MustRegister(imagesWanted, nodesSelected, nodesWarm, imagesCached, imageFailing,
		warmSeconds, refreshes, digestChanges, configErrors, imagesInvalid, pullSeconds, agentHeals, agentCachedBytes, agentPinnedBytes, nodeWarmSeconds, configInvalid, privilegeRefused)
}

// recordReport sets the gauges from a status report.
func recordReport(r status.Report) {
	imagesWanted.Set(float64(len(r.Images)))
	nodesSelected.Set(float64(r.Summary.NodesSelected))
	nodesWarm.Set(float64(r.Summary.NodesWarm))
	imagesCached.Reset()
	imageFailing.Reset()
	agentHeals.Reset()
	agentCachedBytes.Reset()
	agentPinnedBytes.Reset()
	for _, n := range r.Nodes {
		if !n.Selected {
			continue
		}
		cached := 0
		for _, c := range n.Images {
			if c.State == status.Cached {
				cached++
			}
		}
		imagesCached.WithLabelValues(n.Name).Set(float64(cached))
		if n.Agent != nil {
			agentHeals.WithLabelValues(n.Name).Set(float64(n.Agent.Heals))
			if d := n.Agent.Disk; d != nil {
				agentCachedBytes.WithLabelValues(n.Name).Set(float64(d.CachedBytes))
				agentPinnedBytes.WithLabelValues(n.Name).Set(float64(d.PinnedBytes))
			}
		}
	}
	for _, f := range r.Summary.Failing {
		imageFailing.WithLabelValues(f.Node, f.Image, f.Reason).Set(1)
	}
}

// pullLog remembers the pulls already observed, so that each one counts
// once in kip_pull_duration_seconds however often the report is read.
type pullLog map[string]time.Time // node/image -> the cached-since of the pull observed

// observe records, for each cell the agent measured a pull for, its
// duration once, and forgets the cells no longer in the report.
func (l pullLog) observe(r status.Report) {
	seen := map[string]bool{}
	for _, n := range r.Nodes {
		for img, c := range n.Images {
			if c.State != status.Cached || c.PullSeconds <= 0 || c.Since == nil {
				continue
			}
			key := n.Name + "/" + img
			seen[key] = true
			if last, ok := l[key]; ok && last.Equal(*c.Since) {
				continue
			}
			l[key] = *c.Since
			pullSeconds.WithLabelValues(n.Name).Observe(c.PullSeconds)
		}
	}
	for key := range l {
		if !seen[key] {
			delete(l, key)
		}
	}
}
