// Package observe reads what the nodes report about the cached images and
// hands it to the pure status package. It is the one read path behind
// `kip status`, the puller's status reporter and the operator's status.
//
// The facts are the puller's DaemonSet, its pods (found by the selector the
// DaemonSet builder defines) and the nodes, in both caching modes: in agent
// mode each agent writes its node's report on its own pod, which the status
// package reads, so that nothing downstream cares which mode produced them.
// Where a selected node has no pod, the DaemonSet controller's FailedCreate
// Events say why (admission refused it, for example).
package observe

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kip-image-puller/kip/internal/daemonset"
	"github.com/kip-image-puller/kip/internal/status"
)

// Source reads the facts through a client: a manager's cache in the
// controllers, a direct client in `kip status`.
type Source struct {
	Reader client.Reader
	// NodesFromPods stands in for the nodes with the ones that run a
	// puller pod, all Ready, for an identity that may not read nodes.
	NodesFromPods bool
	// Events, when set, reads the DaemonSet's FailedCreate Events when a
	// selected node has no pod: an uncached reader (a controller's cache
	// holds no such Event), used only then.
	Events client.Reader
}

// RefusalWindow is how recent a FailedCreate Event must be to explain a
// missing pod: the DaemonSet controller retries, and says it again, within
// a few minutes while the refusal lasts.
const RefusalWindow = 10 * time.Minute

// Read reads the DaemonSet namespace/name and reports on it. found is false
// when the DaemonSet does not exist.
func (s Source) Read(ctx context.Context, namespace, name string) (r status.Report, found bool, err error) {
	var ds appsv1.DaemonSet
	switch err := s.Reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &ds); {
	case apierrors.IsNotFound(err):
		return status.Report{}, false, nil
	case err != nil:
		return status.Report{}, false, fmt.Errorf("read DaemonSet %s/%s: %w", namespace, name, err)
	}
	r, err = s.Report(ctx, &ds)
	return r, err == nil, err
}

// Report reads the pods of ds and the nodes, and computes the report.
func (s Source) Report(ctx context.Context, ds *appsv1.DaemonSet) (status.Report, error) {
	var pods corev1.PodList
	// Compute only reads: a cache need not copy each object for it.
	if err := s.Reader.List(ctx, &pods, client.InNamespace(ds.Namespace), client.MatchingLabels(daemonset.SelectorLabels(ds.Name)), client.UnsafeDisableDeepCopy); err != nil {
		return status.Report{}, fmt.Errorf("list the pods of DaemonSet %s/%s: %w", ds.Namespace, ds.Name, err)
	}
	var nodes []corev1.Node
	if s.NodesFromPods {
		nodes = nodesOf(pods.Items)
	} else {
		var list corev1.NodeList
		if err := s.Reader.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
			return status.Report{}, fmt.Errorf("list nodes: %w", err)
		}
		nodes = list.Items
	}
	r := status.Compute(ds, pods.Items, nodes)
	if s.Events != nil && r.MissingPods() {
		msg, err := s.refusal(ctx, ds)
		if err != nil {
			return r, err
		}
		if msg != "" {
			r.MarkRefused(msg)
		}
	}
	return r, nil
}

// refusal is the message of the DaemonSet's latest FailedCreate Event of
// the last RefusalWindow; "" when there is none.
func (s Source) refusal(ctx context.Context, ds *appsv1.DaemonSet) (string, error) {
	var events corev1.EventList
	if err := s.Events.List(ctx, &events, client.InNamespace(ds.Namespace), client.MatchingFields{
		"involvedObject.kind": "DaemonSet", "involvedObject.name": ds.Name, "reason": status.ReasonFailedCreate,
	}); err != nil {
		return "", fmt.Errorf("list the FailedCreate Events of DaemonSet %s/%s: %w", ds.Namespace, ds.Name, err)
	}
	return LatestRefusal(events.Items, ds.UID, time.Now().Add(-RefusalWindow)), nil
}
