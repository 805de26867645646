package main

import (
	"context"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/kip-image-puller/kip/internal/agent"
	"github.com/kip-image-puller/kip/internal/daemonset"
)

// followDaemonSet watches the agents' DaemonSet and returns the list it
// carries now, then each new one. The list lives in the DaemonSet's own
// annotations, not in its pod template, so a new list reaches the running
// agents in about a second, with no restart. An annotation that does not
// parse is logged and skipped: the agent keeps the last good list.
func followDaemonSet(ctx context.Context, cs kubernetes.Interface, namespace, name string, log logr.Logger) (agent.List, <-chan agent.List, error) {
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
		}))
	informer := factory.Apps().V1().DaemonSets().Informer()
	if err := informer.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
		log.Error(err, "cannot watch the DaemonSet that carries the list; the agents' Role must allow get, list and watch on daemonsets", "daemonset", namespace+"/"+name)
	}); err != nil {
		return agent.List{}, nil, err
	}
	// Only the newest list matters: a list not taken up yet is replaced.
	lists := make(chan agent.List, 1)
	var seen string
	take := func(obj any) {
		ds, ok := obj.(*appsv1.DaemonSet)
		if !ok {
			return
		}
		key := ds.Annotations[daemonset.AnnotationImages] + "\n" + ds.Annotations[daemonset.AnnotationDigests]
		if key == seen {
			return // a status change
		}
		seen = key
		images, err := daemonset.AgentImages(ds)
		if err != nil {
			log.Error(err, "the list on the DaemonSet does not parse; keeping the last good one")
			return
		}
		select {
		case <-lists:
		default:
		}
		lists <- agent.List{Images: images, Digests: daemonset.RecordedRefresh(ds).Digests}
	}
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    take,
		UpdateFunc: func(_, obj any) { take(obj) },
	}); err != nil {
		return agent.List{}, nil, err
	}
	factory.Start(ctx.Done())
	log.Info("waiting for the list on the DaemonSet", "daemonset", namespace+"/"+name)
	select {
	case list := <-lists:
		return list, lists, nil
	case <-ctx.Done():
		return agent.List{}, nil, ctx.Err()
	}
}

// pullerRemoved tells whether the agents' DaemonSet is gone or going: the
// puller was uninstalled (oc delete, helm uninstall, the resource deleted:
// the DaemonSet goes with the Deployment that owns it) or switched back to
// daemonset mode. A restart, a rollout or a drain leaves the DaemonSet in
// place. A token the API server no longer takes, or a Role no longer
// bound, is the puller's RBAC removed with it. Any other error cannot
// tell, and says so.
func pullerRemoved(ctx context.Context, cs kubernetes.Interface, namespace, name string) (bool, error) {
	ds, err := cs.AppsV1().DaemonSets(namespace).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err), apierrors.IsUnauthorized(err), apierrors.IsForbidden(err):
		return true, nil
	case err != nil:
		return false, err
	}
	return ds.DeletionTimestamp != nil, nil
}

// releaseIfRemoved unpins every image kip pinned on the node when the
// puller is being removed; on a plain stop the pins stay. It has the rest
// of the Pod's grace period.
func releaseIfRemoved(cs kubernetes.Interface, namespace, name string, a *agent.Agent, log logr.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	removed, err := pullerRemoved(ctx, cs, namespace, name)
	if err != nil {
		log.Error(err, "stopping; cannot tell whether the puller is being removed, so the pins stay", "daemonset", namespace+"/"+name)
		return
	}
	if !removed {
		log.Info("stopping; the DaemonSet stays, and so do the pins")
		return
	}
	released, err := a.ReleaseAll(ctx)
	if err != nil {
		log.Error(err, "the puller is being removed; unpinning failed, some pins stay", "unpinned", released)
		return
	}
	log.Info("the puller is being removed; unpinned every image kip pinned", "images", released)
}
