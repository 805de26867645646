// Package observe reads what the nodes report about the cached images and
// hands it to the pure status package. It is the one read path behind
// `kip status`, the puller's status reporter and the operator's status.
//
// In daemonset mode the facts are the puller's DaemonSet, its pods (found by
// the selector the DaemonSet builder defines) and the nodes. A second source
// of per-node facts (a node agent's reports) belongs here too, behind the
// same Report, so that nothing downstream cares which mode produced them.
package observe

import (
	"context"
	"fmt"

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
}

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
	return status.Compute(ds, pods.Items, nodes), nil
}
