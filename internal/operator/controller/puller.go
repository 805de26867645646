package controller

import (
	"context"
	"fmt"

	"github.com/go-logr/logr"
	"github.com/kip-image-puller/kip/api/v1alpha1"
	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/daemonset"
	"github.com/kip-image-puller/kip/internal/operator"
	"github.com/kip-image-puller/kip/internal/puller"
	"github.com/kip-image-puller/kip/internal/ssa"
	"github.com/kip-image-puller/kip/internal/status"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	rbacv1ac "k8s.io/client-go/applyconfigurations/rbac/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// pullerReconciler keeps one KubernetesImagePuller's objects applied and
// its status true.
type pullerReconciler struct {
	client client.Client
	opts   Options
	log    logr.Logger
}

func setupPullers(mgr ctrl.Manager, o Options) error {
	r := &pullerReconciler{client: mgr.GetClient(), opts: o, log: mgr.GetLogger().WithName("kubernetesimagepuller")}
	// DaemonSets and pods belong to the puller Deployment, not the resource:
	// they map to the resources of their namespace. Nodes map to all.
	// Creating or deleting a resource wakes the others of its namespace.
	inNamespace := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, obj client.Object) []reconcile.Request {
		return r.requests(ctx, client.InNamespace(obj.GetNamespace()))
	})
	everywhere := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []reconcile.Request {
		return r.requests(ctx)
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("kubernetesimagepuller").
		For(&v1alpha1.KubernetesImagePuller{}).
		Owns(&corev1.ServiceAccount{}).
		Owns(&rbacv1.Role{}).
		Owns(&rbacv1.RoleBinding{}).
		Owns(&corev1.ConfigMap{}).
		Owns(&appsv1.Deployment{}).
		// Another resource of the namespace coming or going may hand it over.
		Watches(&v1alpha1.KubernetesImagePuller{}, inNamespace, builder.WithPredicates(predicate.Funcs{
			UpdateFunc: func(e event.UpdateEvent) bool { return e.ObjectNew.GetDeletionTimestamp() != nil },
		})).
		Watches(&appsv1.DaemonSet{}, inNamespace).
		Watches(&corev1.Pod{}, inNamespace).
		Watches(&corev1.Node{}, everywhere, builder.WithPredicates(puller.NodeChanged)).
		Complete(r)
}

// requests lists the resources to reconcile, in one namespace or all.
func (r *pullerReconciler) requests(ctx context.Context, opts ...client.ListOption) []reconcile.Request {
	var list v1alpha1.KubernetesImagePullerList
	if err := r.client.List(ctx, &list, opts...); err != nil {
		r.log.Error(err, "list KubernetesImagePullers")
		return nil
	}
	reqs := make([]reconcile.Request, len(list.Items))
	for i := range list.Items {
		reqs[i] = reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])}
	}
	return reqs
}

func (r *pullerReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var kip v1alpha1.KubernetesImagePuller
	if err := r.client.Get(ctx, req.NamespacedName, &kip); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if kip.DeletionTimestamp != nil {
		return reconcile.Result{}, nil // the garbage collector removes what it owns
	}
	obs := operator.Observation{Generation: kip.Generation}

	var all v1alpha1.KubernetesImagePullerList
	if err := r.client.List(ctx, &all, client.InNamespace(kip.Namespace)); err != nil {
		return reconcile.Result{}, err
	}
	if holder := operator.Holder(all.Items); holder != kip.Name {
		obs.Conflict = holder
		return reconcile.Result{}, r.writeStatus(ctx, &kip, obs)
	}

	obs.Want, obs.SpecErr = operator.Validate(kip.Spec, kip.Namespace)
	if obs.SpecErr == nil {
		obs.ApplyErr = r.applyAll(ctx, &kip)
		if obs.ApplyErr != nil {
			r.log.Error(obs.ApplyErr, "apply the puller's objects", "kubernetesimagepuller", req.NamespacedName)
		}
	} else {
		r.log.Info("invalid spec; the last applied objects stay in place", "kubernetesimagepuller", req.NamespacedName, "error", obs.SpecErr.Error())
	}
	if err := r.observe(ctx, &kip, &obs); err != nil {
		return reconcile.Result{}, err
	}
	if err := r.writeStatus(ctx, &kip, obs); err != nil {
		return reconcile.Result{}, err
	}
	if obs.ApplyErr != nil {
		return reconcile.Result{RequeueAfter: r.opts.RetryAfter}, nil
	}
	return reconcile.Result{}, nil
}

// applyAll applies each object that is missing or differs from what the
// resource asks, and nothing else: an idle operator sends no writes.
func (r *pullerReconciler) applyAll(ctx context.Context, kip *v1alpha1.KubernetesImagePuller) error {
	objs, err := operator.Build(kip, r.opts.PullerImage)
	if err != nil {
		return err
	}
	steps := []func() error{
		func() error {
			return apply(ctx, r.client, objs.ServiceAccount, corev1ac.ExtractServiceAccount)
		},
		func() error { return apply(ctx, r.client, objs.Role, rbacv1ac.ExtractRole) },
		func() error { return apply(ctx, r.client, objs.RoleBinding, rbacv1ac.ExtractRoleBinding) },
		func() error { return apply(ctx, r.client, objs.ConfigMap, corev1ac.ExtractConfigMap) },
		func() error { return apply(ctx, r.client, objs.Deployment, appsv1ac.ExtractDeployment) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return r.prune(ctx, kip, objs)
}

// prune deletes what the resource made under names it no longer uses, after
// a change of deploymentName or configMapName: otherwise two pullers would
// keep running.
func (r *pullerReconciler) prune(ctx context.Context, kip *v1alpha1.KubernetesImagePuller, objs operator.Objects) error {
	kinds := []struct {
		kind string
		list client.ObjectList
		keep string
	}{
		{"ServiceAccount", &corev1.ServiceAccountList{}, objs.ServiceAccount.Name},
		{"Role", &rbacv1.RoleList{}, objs.Role.Name},
		{"RoleBinding", &rbacv1.RoleBindingList{}, objs.RoleBinding.Name},
		{"ConfigMap", &corev1.ConfigMapList{}, objs.ConfigMap.Name},
		{"Deployment", &appsv1.DeploymentList{}, objs.Deployment.Name},
	}
	for _, k := range kinds {
		if err := r.client.List(ctx, k.list, client.InNamespace(kip.Namespace),
			client.MatchingLabels{daemonset.LabelManagedBy: operator.ManagedBy, daemonset.LabelInstance: kip.Name}); err != nil {
			return err
		}
		items, err := meta.ExtractList(k.list)
		if err != nil {
			return err
		}
		for _, item := range items {
			obj := item.(client.Object)
			owner := metav1.GetControllerOf(obj)
			if obj.GetName() == k.keep || owner == nil || owner.UID != kip.UID {
				continue
			}
			if err := r.client.Delete(ctx, obj); client.IgnoreNotFound(err) != nil {
				return fmt.Errorf("delete %s %s, no longer used: %w", k.kind, obj.GetName(), err)
			}
			r.log.Info("deleted an object no longer used", "kind", k.kind, "name", obj.GetName(), "kubernetesimagepuller", client.ObjectKeyFromObject(kip))
		}
	}
	return nil
}

// apply server-side applies desired when the fields the operator owns on
// the live object differ from it, or the object is missing.
func apply[T any, PT interface {
	*T
	client.Object
}, A any, PA interface {
	*A
	runtime.ApplyConfiguration
}](ctx context.Context, c client.Client, desired PT, extract func(PT, string) (PA, error)) error {
	live := PT(new(T))
	switch err := c.Get(ctx, client.ObjectKeyFromObject(desired), live); {
	case err == nil:
		owned, err := extract(live, FieldOwner)
		if err != nil {
			return fmt.Errorf("extract the fields of %T %s managed by %s: %w", desired, desired.GetName(), FieldOwner, err)
		}
		same, err := ssa.UpToDate(owned, (*T)(desired))
		if err != nil || same {
			return err
		}
	case !apierrors.IsNotFound(err):
		return err
	}
	ac, err := ssa.Configuration[A](desired)
	if err != nil {
		return err
	}
	if err := c.Apply(ctx, PA(ac), client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
		return fmt.Errorf("apply %T %s: %w", desired, desired.GetName(), err)
	}
	return nil
}

// observe reads the puller Deployment, its DaemonSet, their pods and the
// nodes into obs.
func (r *pullerReconciler) observe(ctx context.Context, kip *v1alpha1.KubernetesImagePuller, obs *operator.Observation) error {
	ns := kip.Namespace
	var dep appsv1.Deployment
	switch err := r.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: operator.DeploymentName(kip.Spec)}, &dep); {
	case err == nil:
		obs.Deployment = &dep
	case !apierrors.IsNotFound(err):
		return err
	}
	dsName := config.Defaults[config.KeyDaemonSetName]
	if obs.Want != nil {
		dsName = obs.Want.DaemonSetName
	} else if kip.Spec.DaemonsetName != "" {
		dsName = kip.Spec.DaemonsetName
	}
	var ds appsv1.DaemonSet
	switch err := r.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: dsName}, &ds); {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return err
	}
	var pods corev1.PodList
	if err := r.client.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels(daemonset.SelectorLabels(dsName))); err != nil {
		return err
	}
	var nodes corev1.NodeList
	if err := r.client.List(ctx, &nodes); err != nil {
		return err
	}
	report := status.Compute(&ds, pods.Items, nodes.Items)

	obs.Report = &report
	return nil
}

// writeStatus writes the status for obs when it differs from the stored one.
func (r *pullerReconciler) writeStatus(ctx context.Context, kip *v1alpha1.KubernetesImagePuller, obs operator.Observation) error {
	st := operator.Status(kip.Status, obs)
	if equality.Semantic.DeepEqual(st, kip.Status) {
		return nil
	}
	kip.Status = st
	if err := r.client.Status().Update(ctx, kip); err != nil {
		if apierrors.IsConflict(err) {
			return err // the next reconcile sees the newer object
		}
		return fmt.Errorf("update status of %s/%s: %w", kip.Namespace, kip.Name, err)
	}
	return nil
}
