package imagepuller

import (
	"context"
	"errors"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kip-image-puller/kip/api/v1alpha1"
	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/observe"
	"github.com/kip-image-puller/kip/internal/operator"
	"github.com/kip-image-puller/kip/internal/privilege"
)

func (r *reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var kip v1alpha1.KubernetesImagePuller
	switch err := r.client.Get(ctx, req.NamespacedName, &kip); {
	case apierrors.IsNotFound(err):
		// The garbage collector removes what it owned; its node bindings
		// are cluster-scoped, which no namespaced object can own.
		return reconcile.Result{}, r.pruneNodeBindings(ctx, req.Namespace, req.Name, nil)
	case err != nil:
		return reconcile.Result{}, err
	}
	if kip.DeletionTimestamp != nil {
		return reconcile.Result{}, r.pruneNodeBindings(ctx, kip.Namespace, kip.Name, nil)
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
		setting, err := r.setting(ctx, &kip)
		if err != nil {
			return reconcile.Result{}, err
		}
		// What the puller will refuse for want of a grant, as it decides it
		// (privilege.Restrict); whether it knows its own digest, the
		// puller's Event says.
		_, refused := privilege.Restrict(obs.Want, privilege.Policy{Grants: setting.Grants, ExtraSockets: setting.AllowedSockets, AgentImage: setting.PullerImage})
		obs.PrivilegeRefused = privilege.Message(refused)
		obs.ApplyErr = r.applyAll(ctx, &kip, setting)
		if obs.ApplyErr != nil {
			r.log.Error(obs.ApplyErr, "apply the puller's objects", "kubernetesimagepuller", req.NamespacedName)
			var foreign *operator.ForeignError
			if errors.As(obs.ApplyErr, &foreign) {
				r.recorder.Eventf(&kip, corev1.EventTypeWarning, ReasonForeignObject, "%s", foreign.Message)
			}
		}
	} else {
		r.log.Info("invalid spec; the last applied objects stay in place", "kubernetesimagepuller", req.NamespacedName, "error", obs.SpecErr.Error())
	}
	if err := r.read(ctx, &kip, &obs); err != nil {
		return reconcile.Result{}, err
	}
	if err := r.writeStatus(ctx, &kip, obs); err != nil {
		return reconcile.Result{}, err
	}
	if obs.ApplyErr != nil || obs.PrivilegeRefused != "" {
		// A grant is a Namespace label, which the operator does not watch.
		return reconcile.Result{RequeueAfter: r.opts.RetryAfter}, nil
	}
	return reconcile.Result{}, nil
}

// read reads the puller Deployment and what the nodes report about its
// DaemonSet into obs.
func (r *reconciler) read(ctx context.Context, kip *v1alpha1.KubernetesImagePuller, obs *operator.Observation) error {
	ns := kip.Namespace
	var dep appsv1.Deployment
	switch err := r.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: operator.DeploymentName(kip.Spec)}, &dep); {
	case err == nil:
		obs.Deployment = &dep
	case !apierrors.IsNotFound(err):
		return err
	}
	if obs.SpecErr == nil {
		var cm corev1.ConfigMap
		switch err := r.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: operator.ConfigMapName(kip.Spec)}, &cm); {
		case err == nil:
			var events corev1.EventList
			if err := r.client.List(ctx, &events, client.InNamespace(ns)); err != nil {
				return err
			}
			obs.Refused = operator.Refusal(events.Items, &cm)
		case !apierrors.IsNotFound(err):
			return err
		}
	}
	dsName := config.ActiveDaemonSet(operator.ConfigData(kip.Spec, ns))
	report, found, err := observe.Source{Reader: r.client, Events: r.events}.Read(ctx, ns, dsName)
	if err != nil || !found {
		return err
	}
	obs.Report = &report
	return nil
}

// Event reasons of the operator about a resource.
const (
	// ReasonForeignObject: an object the resource's puller needs exists and
	// is not the operator's; it is left alone.
	ReasonForeignObject = "ForeignObject"
	// ReasonImageSetAside: imagePullerImage is not used in a namespace
	// granted privilege.
	ReasonImageSetAside = "ImagePullerImageSetAside"
)

// setting reads what the cluster admin granted the resource's namespace
// (its labels; no namespaced role can write them) and adds what the
// operator's installer set.
func (r *reconciler) setting(ctx context.Context, kip *v1alpha1.KubernetesImagePuller) (operator.Setting, error) {
	s := operator.Setting{PullerImage: r.opts.PullerImage, AllowedSockets: r.opts.AllowedSockets}
	var ns corev1.Namespace
	if err := r.events.Get(ctx, client.ObjectKey{Name: kip.Namespace}, &ns); err != nil {
		return s, err
	}
	s.Grants = privilege.FromLabels(ns.Labels)
	if _, note := operator.PullerImage(kip, s); note != "" && r.recorder != nil {
		r.recorder.Eventf(kip, corev1.EventTypeWarning, ReasonImageSetAside, "%s", note)
	}
	return s, nil
}
