package puller

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/privilege"
	"github.com/kip-image-puller/kip/internal/status"
)

// ReasonPrivilegeNotGranted is the Event of a configuration that asks for
// what a cluster admin has not granted its namespace (agent mode, node
// writes) or its installer has not allowed (a runtime socket): it is left
// out, and the rest is applied.
const ReasonPrivilegeNotGranted = config.ReasonPrivilegeNotGranted

// DefaultPrivilegeRecheck is how often a configuration that asks for
// privilege looks at its Namespace's grants again: they are labels that a
// cluster admin adds or removes, and a namespaced identity cannot watch a
// Namespace. A grant removed thus takes agent mode away within a minute.
const DefaultPrivilegeRecheck = time.Minute

// asksForPrivilege tells whether cfg needs anything a grant decides.
func asksForPrivilege(cfg *config.Config) bool {
	return cfg.CachingMode == config.ModeAgent || cfg.NodeCondition || cfg.WarmNodeTaint != ""
}

// policy reads what this puller is allowed: its Namespace's grants, the
// sockets its installer allowed, the nodes' runtimes and its own image by
// digest. It reads nothing for a configuration that asks for no privilege.
func (r *reconciler) policy(ctx context.Context, cfg *config.Config) (privilege.Policy, error) {
	p := privilege.Policy{ExtraSockets: r.opts.AllowedSockets}
	if !asksForPrivilege(cfg) {
		return p, nil
	}
	var ns corev1.Namespace
	switch err := r.apiReader.Get(ctx, types.NamespacedName{Name: r.opts.Namespace}, &ns); {
	case err == nil:
		p.Grants = privilege.FromLabels(ns.Labels)
	case apierrors.IsForbidden(err):
		// An install from before grants: its Role cannot read the
		// Namespace. Nothing is granted, which the refusal names.
		r.log.Info("may not read the puller's Namespace, so no privilege is granted", "namespace", r.opts.Namespace, "error", err.Error())
	default:
		return p, err
	}
	if cfg.CachingMode != config.ModeAgent || !p.Grants.AgentMode {
		return p, nil
	}
	p.AgentImage, p.AgentImageProblem = r.ownImage(ctx)
	if cfg.CRISocket == "" && r.nodesReadable {
		var nodes corev1.NodeList
		if err := r.client.List(ctx, &nodes); err != nil {
			return p, err
		}
		spec := &corev1.PodSpec{NodeSelector: cfg.NodeSelector, Affinity: cfg.Affinity, Tolerations: cfg.Tolerations}
		for i := range nodes.Items {
			if status.Selects(spec, &nodes.Items[i]) {
				p.Runtimes = append(p.Runtimes, nodes.Items[i].Status.NodeInfo.ContainerRuntimeVersion)
			}
		}
	}
	return p, nil
}

// ownImage is the controller's own image by digest, from its Pod's status:
// the agents run exactly its code. Outside a cluster (no POD_NAME) it is
// the --kip-image of whoever started the process. Once found it is kept:
// the process's own image does not change while it runs.
func (r *reconciler) ownImage(ctx context.Context) (image, problem string) {
	if r.opts.PodName == "" {
		return r.opts.DefaultKIPImage, ""
	}
	if r.ownImageByDigest == "" {
		r.ownImageByDigest, problem = r.readOwnImage(ctx)
	}
	return r.ownImageByDigest, problem
}

// readOwnImage reads the controller's image by digest off its Pod.
func (r *reconciler) readOwnImage(ctx context.Context) (image, problem string) {
	var pod corev1.Pod
	if err := r.apiReader.Get(ctx, types.NamespacedName{Namespace: r.opts.Namespace, Name: r.opts.PodName}, &pod); err != nil {
		return "", fmt.Sprintf("reading the controller's Pod %s: %v", r.opts.PodName, err)
	}
	if len(pod.Spec.Containers) == 0 {
		return "", fmt.Sprintf("the controller's Pod %s has no container", r.opts.PodName)
	}
	c := pod.Spec.Containers[0]
	for _, s := range pod.Status.ContainerStatuses {
		if s.Name == c.Name {
			img, err := privilege.ImageByDigest(c.Image, s.ImageID)
			if err != nil {
				return "", err.Error()
			}
			return img, ""
		}
	}
	return "", fmt.Sprintf("the controller's Pod %s reports no status for its container %s yet", r.opts.PodName, c.Name)
}

// reportRefusals tells, once per distinct set, what the configuration asked
// for and did not get. The Event carries the configuration's fingerprint,
// so that the operator names it in the resource's conditions.
func (r *reconciler) reportRefusals(regarding runtime.Object, refused []privilege.Refusal, fingerprint string) {
	privilegeRefused.Set(float64(len(refused)))
	msg := privilege.Message(refused)
	if msg == r.lastRefusal {
		return
	}
	r.lastRefusal = msg
	if msg == "" {
		return
	}
	r.log.Error(nil, "the configuration asks for privilege that was not granted; that part is left out", "refused", msg)
	r.events.emitAnnotated(regarding, map[string]string{config.AnnotationFingerprint: fingerprint},
		corev1.EventTypeWarning, ReasonPrivilegeNotGranted, "%s", msg)
}
