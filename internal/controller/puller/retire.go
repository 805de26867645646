package puller

import (
	"context"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kip-image-puller/kip/internal/daemonset"
)

// retireCheck is how often, while a renamed DaemonSet warms up, the
// controller looks whether the old one can go. The DaemonSet watch ignores
// status updates, so this is the one poll, and only during a rename.
const retireCheck = 5 * time.Second

// leftBehind returns the DaemonSets an earlier DAEMONSET_NAME left: in the
// list (one namespace), controlled by this puller's Deployment, under
// another name than current. Without its own Deployment the controller
// cannot tell what is its own, and retires nothing.
func leftBehind(all []appsv1.DaemonSet, current string, own *appsv1.Deployment) []*appsv1.DaemonSet {
	if own == nil {
		return nil
	}
	var out []*appsv1.DaemonSet
	for i := range all {
		ds := &all[i]
		ref := metav1.GetControllerOf(ds)
		if ds.Name != current && ref != nil && ref.UID == own.UID && ds.DeletionTimestamp == nil {
			out = append(out, ds)
		}
	}
	return out
}

// retireLeftBehind deletes the DaemonSets an earlier DAEMONSET_NAME or
// CACHING_MODE left behind (the other mode's DaemonSet has another name), once the DaemonSet called name (current; nil when just written)
// holds every image on every node it selects, so the protection never
// drops. Until then it checks again every retireCheck.
func (r *reconciler) retireLeftBehind(ctx context.Context, name string, current *appsv1.DaemonSet, own *appsv1.Deployment) (reconcile.Result, error) {
	if own == nil {
		return reconcile.Result{}, nil
	}
	var list appsv1.DaemonSetList
	if err := r.client.List(ctx, &list, ctrl.InNamespace(r.opts.Namespace)); err != nil {
		return reconcile.Result{}, err
	}
	old := leftBehind(list.Items, name, own)
	if len(old) == 0 {
		return reconcile.Result{}, nil
	}
	if current == nil || !daemonset.RolledOut(current) {
		return reconcile.Result{RequeueAfter: retireCheck}, nil
	}
	for _, ds := range old {
		err := r.client.Delete(ctx, ds, ctrl.Preconditions{UID: &ds.UID}, ctrl.PropagationPolicy(metav1.DeletePropagationBackground))
		if err != nil && !apierrors.IsNotFound(err) {
			return reconcile.Result{}, err
		}
		r.log.Info("removed the DaemonSet of an earlier DAEMONSET_NAME or CACHING_MODE", "removed", ds.Name, "daemonset", current.Name)
		r.events.emit(current, corev1.EventTypeNormal, ReasonRetired,
			"DaemonSet %s holds every image on its %d nodes; removed %s, left by an earlier DAEMONSET_NAME or CACHING_MODE", current.Name, current.Status.DesiredNumberScheduled, ds.Name)
	}
	return reconcile.Result{}, nil
}
