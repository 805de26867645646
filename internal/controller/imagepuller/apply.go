package imagepuller

import (
	"context"
	"fmt"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	rbacv1ac "k8s.io/client-go/applyconfigurations/rbac/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kip-image-puller/kip/api/v1alpha1"
	"github.com/kip-image-puller/kip/internal/labels"
	"github.com/kip-image-puller/kip/internal/operator"
	"github.com/kip-image-puller/kip/internal/ssa"
)

// applyAll applies each object that is missing or differs from what the
// resource asks, and nothing else: an idle operator sends no writes.
func (r *reconciler) applyAll(ctx context.Context, kip *v1alpha1.KubernetesImagePuller, s operator.Setting) error {
	objs, err := operator.Build(kip, s)
	if err != nil {
		return err
	}
	steps := []func() error{
		func() error {
			return apply(ctx, r.client, r.uncached, kip, objs.ServiceAccount, corev1ac.ExtractServiceAccount)
		},
		func() error { return r.replaceRoleRef(ctx, kip, objs.RoleBinding) },
		func() error {
			return apply(ctx, r.client, r.uncached, kip, objs.RoleBinding, rbacv1ac.ExtractRoleBinding)
		},
		func() error {
			return apply(ctx, r.client, r.uncached, kip, objs.AgentServiceAccount, corev1ac.ExtractServiceAccount)
		},
		func() error { return r.replaceRoleRef(ctx, kip, objs.AgentRoleBinding) },
		func() error {
			return apply(ctx, r.client, r.uncached, kip, objs.AgentRoleBinding, rbacv1ac.ExtractRoleBinding)
		},
		func() error { return apply(ctx, r.client, r.uncached, kip, objs.ConfigMap, corev1ac.ExtractConfigMap) },
	}
	for _, b := range objs.NodeBindings {
		steps = append(steps, func() error { return apply(ctx, r.client, r.uncached, kip, b, rbacv1ac.ExtractClusterRoleBinding) })
	}
	// The node bindings before the Deployment: a puller restarted for new
	// node access finds it granted.
	steps = append(steps,
		func() error { return r.pruneNodeBindings(ctx, kip.Namespace, kip.Name, objs.NodeBindings) },
		func() error {
			return apply(ctx, r.client, r.uncached, kip, objs.Deployment, appsv1ac.ExtractDeployment)
		})
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return r.prune(ctx, kip, objs)
}

// replaceRoleRef deletes the RoleBinding when it grants another role than
// desired: a roleRef cannot change, and earlier versions bound a Role of
// their own where the puller ClusterRole is bound now. The apply that
// follows creates it again.
func (r *reconciler) replaceRoleRef(ctx context.Context, kip *v1alpha1.KubernetesImagePuller, desired *rbacv1.RoleBinding) error {
	var live rbacv1.RoleBinding
	switch err := r.client.Get(ctx, client.ObjectKeyFromObject(desired), &live); {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return err
	}
	if live.RoleRef == desired.RoleRef {
		return nil
	}
	if err := operator.CheckOwn(kip, &live, "RoleBinding"); err != nil {
		return err
	}
	if err := r.client.Delete(ctx, &live, client.Preconditions{UID: &live.UID}); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("replace RoleBinding %s, which grants %s %s: %w", live.Name, live.RoleRef.Kind, live.RoleRef.Name, err)
	}
	r.log.Info("replaced a RoleBinding to another role", "rolebinding", live.Name, "was", live.RoleRef.Kind+"/"+live.RoleRef.Name, "now", desired.RoleRef.Kind+"/"+desired.RoleRef.Name)
	return nil
}

// prune deletes what the resource made under names it no longer uses, after
// a change of deploymentName or configMapName (otherwise two pullers would
// keep running), and the Role earlier versions made.
func (r *reconciler) prune(ctx context.Context, kip *v1alpha1.KubernetesImagePuller, objs operator.Objects) error {
	kinds := []struct {
		kind string
		list client.ObjectList
		keep []string
	}{
		{"ServiceAccount", &corev1.ServiceAccountList{}, []string{objs.ServiceAccount.Name, objs.AgentServiceAccount.Name}},
		{"Role", &rbacv1.RoleList{}, nil}, // earlier versions made one; a RoleBinding to the puller ClusterRole replaces it
		{"RoleBinding", &rbacv1.RoleBindingList{}, []string{objs.RoleBinding.Name, objs.AgentRoleBinding.Name}},
		{"ConfigMap", &corev1.ConfigMapList{}, []string{objs.ConfigMap.Name}},
		{"Deployment", &appsv1.DeploymentList{}, []string{objs.Deployment.Name}},
	}
	for _, k := range kinds {
		if err := r.client.List(ctx, k.list, client.InNamespace(kip.Namespace),
			client.MatchingLabels{labels.ManagedBy: labels.ManagedByOperator, labels.Instance: kip.Name}); err != nil {
			return err
		}
		items, err := meta.ExtractList(k.list)
		if err != nil {
			return err
		}
		for _, item := range items {
			obj := item.(client.Object)
			owner := metav1.GetControllerOf(obj)
			if slices.Contains(k.keep, obj.GetName()) || owner == nil || owner.UID != kip.UID {
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

// pruneNodeBindings deletes the node bindings of the resource name in
// namespace that keep is without: the field was cleared, or the resource
// is gone (keep is empty). They are cluster-scoped, so no owner reference
// takes them with the resource.
func (r *reconciler) pruneNodeBindings(ctx context.Context, namespace, name string, keep []*rbacv1.ClusterRoleBinding) error {
	var list rbacv1.ClusterRoleBindingList
	if err := r.client.List(ctx, &list, client.MatchingLabels{labels.ManagedBy: labels.ManagedByOperator,
		labels.Instance: name, operator.LabelNamespace: namespace}); err != nil {
		return err
	}
	for i := range list.Items {
		b := &list.Items[i]
		if slices.ContainsFunc(keep, func(k *rbacv1.ClusterRoleBinding) bool { return k.Name == b.Name }) {
			continue
		}
		if err := r.client.Delete(ctx, b); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete ClusterRoleBinding %s, no longer asked for: %w", b.Name, err)
		}
		r.log.Info("removed a node binding no longer asked for", "clusterrolebinding", b.Name, "kubernetesimagepuller", namespace+"/"+name)
	}
	return nil
}

// apply server-side applies desired when the fields the operator owns on
// the live object differ from it, or the object is missing. It never
// takes over an object of the same name that is not kip's (operator.CheckOwn).
func apply[T any, PT interface {
	*T
	client.Object
}, A any, PA interface {
	*A
	runtime.ApplyConfiguration
}](ctx context.Context, c client.Client, uncached client.Reader, kip *v1alpha1.KubernetesImagePuller, desired PT, extract func(PT, string) (PA, error)) error {
	live := PT(new(T))
	err := c.Get(ctx, client.ObjectKeyFromObject(desired), live)
	if apierrors.IsNotFound(err) {
		// Not among the operator's objects: another's of that name would be
		// taken over by the forced apply below.
		err = uncached.Get(ctx, client.ObjectKeyFromObject(desired), live)
	}
	switch {
	case err == nil:
		if err := operator.CheckOwn(kip, live, desired.GetObjectKind().GroupVersionKind().Kind); err != nil {
			return err
		}
		owned, err := extract(live, labels.OperatorFieldOwner)
		if err != nil {
			return fmt.Errorf("extract the fields of %T %s managed by %s: %w", desired, desired.GetName(), labels.OperatorFieldOwner, err)
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
	if err := c.Apply(ctx, PA(ac), client.FieldOwner(labels.OperatorFieldOwner), client.ForceOwnership); err != nil {
		return fmt.Errorf("apply %T %s: %w", desired, desired.GetName(), err)
	}
	return nil
}
