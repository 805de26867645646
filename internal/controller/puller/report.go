package puller

import (
	"context"
	"sort"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kip-image-puller/kip/internal/observe"
	"github.com/kip-image-puller/kip/internal/status"
)

// Event reasons of the status reporter.
const (
	ReasonImageFailing   = "ImageFailing"
	ReasonImageRecovered = "ImageRecovered"
	ReasonAllNodesWarm   = "AllNodesWarm"
)

// reporter watches what the nodes report about the puller's pods and tells
// what changes: an image starting to fail on a node, recovering, and every
// node becoming warm after a change. It only reads and records Events and
// metrics; it never writes the DaemonSet.
type reporter struct {
	client client.Client
	source observe.Source
	events eventSink
	log    logr.Logger
	now    func() time.Time

	failing map[string]status.Failure // by node/image, reported once while it lasts
	pulls   pullLog
	nodes   *nodeWarmer // the node condition and the startup taint
	// The DaemonSet generation being warmed, when the reporter first saw
	// it, and whether its warm-up was announced.
	generation int64
	since      time.Time
	announced  bool
}

func (r *reporter) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	var list appsv1.DaemonSetList
	if err := r.client.List(ctx, &list); err != nil {
		return reconcile.Result{}, err
	}
	if len(list.Items) == 0 {
		return reconcile.Result{}, nil
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].CreationTimestamp.Before(&list.Items[j].CreationTimestamp) })
	ds := &list.Items[len(list.Items)-1]
	report, err := r.source.Report(ctx, ds)
	if err != nil {
		return reconcile.Result{}, err
	}
	recordReport(report)
	if r.pulls == nil {
		r.pulls = pullLog{}
	}
	r.pulls.observe(report)
	r.reportFailures(ds, report)
	r.reportWarm(ds, report)
	after, err := r.nodes.sync(ctx, ds, report)
	return reconcile.Result{RequeueAfter: after}, err
}

func (r *reporter) reportFailures(ds *appsv1.DaemonSet, report status.Report) {
	now := map[string]status.Failure{}
	for _, f := range report.Summary.Failing {
		key := f.Node + "/" + f.Image
		now[key] = f
		if _, known := r.failing[key]; known {
			continue
		}
		r.log.Info("image failing on a node", "node", f.Node, "image", f.Image, "reason", f.Reason, "message", f.Message)
		r.events.emit(ds, corev1.EventTypeWarning, ReasonImageFailing, "%s on %s: %s: %s", f.Image, f.Node, f.Reason, f.Message)
	}
	for key, f := range r.failing {
		if _, still := now[key]; still {
			continue
		}
		for _, n := range report.Nodes {
			if n.Name == f.Node && n.Images[f.Image].State == status.Cached {
				r.log.Info("image recovered on a node", "node", f.Node, "image", f.Image)
				r.events.emit(ds, corev1.EventTypeNormal, ReasonImageRecovered, "%s on %s is cached again", f.Image, f.Node)
			}
		}
	}
	r.failing = now
}

// reportWarm announces, once per DaemonSet generation, that every selected
// node holds every image, with the time since the reporter saw the change.
func (r *reporter) reportWarm(ds *appsv1.DaemonSet, report status.Report) {
	first := r.since.IsZero()
	if first || ds.Generation != r.generation {
		r.generation, r.since, r.announced = ds.Generation, r.now(), false
		if first && report.Summary.Complete() {
			r.announced = true // warm before this process started: nothing to tell
		}
	}
	if r.announced || !report.Summary.Complete() {
		return
	}
	r.announced = true
	took := r.now().Sub(r.since)
	warmSeconds.Observe(took.Seconds())
	r.log.Info("every node holds every image", "nodes", report.Summary.NodesSelected, "images", len(report.Images), "took", took.String())
	r.events.emit(ds, corev1.EventTypeNormal, ReasonAllNodesWarm, "all %d selected nodes hold all %d images, %s after the change",
		report.Summary.NodesSelected, len(report.Images), took.Round(100*time.Millisecond))
}
