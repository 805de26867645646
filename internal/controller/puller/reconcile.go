// Package puller is the image puller controller: it watches its ConfigMap and
// its DaemonSet, applies the DaemonSet the configuration describes with
// server-side apply, heals drift, and rolls the pods only when a refresh finds
// that an image tag moved to a new digest. The rules live in the pure
// packages config and daemonset; this package wires clients to them.
package puller

import (
	"context"
	"fmt"
	"strings"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/daemonset"
	"github.com/kip-image-puller/kip/internal/privilege"
)

// reconciler converges the one DaemonSet of one puller configuration.
type reconciler struct {
	client    ctrl.Client // cached: ConfigMap, DaemonSet
	apiReader ctrl.Reader // uncached: the owner Deployment, and drift confirmed before a write
	events    eventSink
	refresher *refresher
	opts      Options
	log       logr.Logger

	// Dedupe state, so a problem that persists is reported once.
	lastInvalid  string
	lastWarnings string
	lastSkipped  string
	lastFailures map[string]string
	lastApplied  string // hash of the last desired DaemonSet this process applied
	// lastConfiguration identifies the configuration last applied; a new
	// one is dry-run first.
	lastConfiguration string
	// rejectedConfiguration identifies a configuration the API server
	// refused; it is not tried again until the configuration changes.
	rejectedConfiguration string

	// sawDeployment records that the puller's own Deployment existed: once
	// it is gone, the puller is being uninstalled.
	sawDeployment bool
	uninstalling  bool

	configMapMissing bool
	lastConflict     string
	lastRefusal      string
	// nodesReadable: this identity may list and watch nodes.
	nodesReadable bool
	// ownImageByDigest is the controller's own image, once read (ownImage).
	ownImageByDigest string
}

// configSource is where the configuration came from, for Events.
type configSource struct {
	data      map[string]string
	configMap *corev1.ConfigMap // nil when the environment is used
	missing   bool              // the ConfigMap to watch does not exist
}

func (r *reconciler) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	src, err := r.loadSource(ctx)
	if err != nil {
		return reconcile.Result{}, err
	}
	deployment, err := r.ownDeployment(ctx)
	if err != nil {
		return reconcile.Result{}, err
	}
	if r.beingUninstalled(deployment) {
		return reconcile.Result{}, nil
	}
	if r.reportMissingConfigMap(src, deployment) {
		return reconcile.Result{}, nil // the last applied DaemonSet stays; the ConfigMap's return resumes
	}
	regarding := eventTarget(src, deployment)

	cfg, warnings, err := config.Parse(src.data)
	warnings = append(warnings, r.identityWarnings(src)...)
	if err == nil {
		err = r.checkNamespace(cfg)
	}
	if err != nil {
		r.reportInvalid(regarding, err, config.Fingerprint(src.data))
		return reconcile.Result{}, nil // the last applied DaemonSet stays; wait for the next change
	}
	if config.Fingerprint(src.data) == r.rejectedConfiguration {
		return reconcile.Result{}, nil // the API server refused it (reported); wait for the next change
	}
	r.reportValid(regarding, warnings)
	r.reportSkipped(regarding, cfg.Skipped, len(cfg.Images))
	// What the configuration asks for beyond what its namespace was
	// granted is left out, and the rest applied: agent mode refused is
	// daemonset mode, which needs nothing.
	var recheck reconcile.Result
	if asksForPrivilege(cfg) {
		recheck.RequeueAfter = r.opts.PrivilegeRecheck
	}
	policy, err := r.policy(ctx, cfg)
	if err != nil {
		return reconcile.Result{}, err
	}
	cfg, refused := privilege.Restrict(cfg, policy)
	r.reportRefusals(regarding, refused, config.Fingerprint(src.data))
	r.refresher.track(cfg)

	var live *appsv1.DaemonSet
	var found appsv1.DaemonSet
	switch err := r.client.Get(ctx, types.NamespacedName{Namespace: cfg.Namespace, Name: config.ActiveDaemonSetName(cfg.DaemonSetName, cfg.CachingMode)}, &found); {
	case err == nil:
		live = &found
	case !apierrors.IsNotFound(err):
		return reconcile.Result{}, err
	}

	if r.reportConflict(live, deployment) {
		return reconcile.Result{}, nil // never take over another controller's DaemonSet; its deletion or a rename resolves it
	}

	outcome := r.refresher.latest()
	refresh, changed := daemonset.NextRefresh(daemonset.RecordedRefresh(live), daemonset.TaggedRefs(cfg), outcome.digests)
	desired := daemonset.Build(cfg, daemonset.Options{
		KIPImage:       r.kipImage(deployment),
		AgentImage:     policy.AgentImage,
		OpenShift:      r.opts.OpenShift,
		AllowedSockets: r.opts.AllowedSockets,
		Owner:          ownerReference(deployment, cfg.Namespace),
		Refresh:        refresh,
	})
	if err := daemonset.CheckSize(desired); err != nil {
		r.reportInvalid(regarding, err, config.Fingerprint(src.data))
		return reconcile.Result{}, nil // the last applied DaemonSet stays
	}
	// Events name the DaemonSet by UID too, so that `kubectl describe` shows them.
	about := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: desired.Name, Namespace: desired.Namespace}}
	if live != nil {
		about.UID = live.UID
	}
	r.reportResolveFailures(about, outcome.failures)

	stale, err := r.needsApply(ctx, live, desired)
	if err != nil {
		return reconcile.Result{}, err
	}
	if stale {
		// A new configuration is first applied as a dry run, so that what
		// the API server or an admission policy refuses is reported as an
		// invalid configuration, naming the key, and the last DaemonSet stays.
		key := config.Fingerprint(src.data)
		refused := func(err error) bool {
			invalid := rejection(err, desired)
			if invalid != nil {
				r.rejectedConfiguration = key
				r.reportInvalid(regarding, invalid, key)
			}
			return invalid != nil
		}
		if key != r.lastConfiguration {
			if _, err := r.apply(ctx, desired, true); err != nil {
				if refused(err) {
					return reconcile.Result{}, nil
				}
				return reconcile.Result{}, err
			}
		}
		if err := r.applyDesired(ctx, desired, about, len(cfg.Images), changed); err != nil {
			if refused(err) {
				return reconcile.Result{}, nil
			}
			return reconcile.Result{}, err
		}
		r.lastConfiguration = key
		live = nil // just written: not rolled out yet
	}
	res, err := r.retireLeftBehind(ctx, desired.Name, live, deployment)
	if err == nil && res.IsZero() {
		res = recheck
	}
	return res, err
}

// applyDesired applies the DaemonSet and reports what the write was for.
func (r *reconciler) applyDesired(ctx context.Context, desired, about *appsv1.DaemonSet, images int, changed []string) error {
	uid, err := r.apply(ctx, desired, false)
	if err != nil {
		r.events.emit(about, corev1.EventTypeWarning, ReasonApplyFailed, "applying DaemonSet %s failed: %v", desired.Name, err)
		return err
	}
	about.UID = uid
	hash := desiredHash(desired)
	switch {
	case len(changed) > 0:
		digestChanges.Add(float64(len(changed)))
		r.events.emit(about, corev1.EventTypeNormal, ReasonImageChanged,
			"rolling the puller pods: new digest for %s", strings.Join(changed, ", "))
	case hash == r.lastApplied:
		r.events.emit(about, corev1.EventTypeNormal, ReasonRestored,
			"DaemonSet %s was changed or deleted outside the puller; restored", desired.Name)
	default:
		r.events.emit(about, corev1.EventTypeNormal, ReasonApplied,
			"DaemonSet %s applied with %d images", desired.Name, images)
	}
	r.lastApplied = hash
	r.log.Info("applied DaemonSet", "daemonset", desired.Name, "namespace", desired.Namespace,
		"images", images, "changedDigests", changed)
	return nil
}

func (r *reconciler) loadSource(ctx context.Context) (configSource, error) {
	if r.opts.ConfigMapName != "" {
		var cm corev1.ConfigMap
		err := r.client.Get(ctx, types.NamespacedName{Namespace: r.opts.Namespace, Name: r.opts.ConfigMapName}, &cm)
		switch {
		case err == nil:
			return configSource{data: cm.Data, configMap: &cm}, nil
		case apierrors.IsNotFound(err):
			return configSource{missing: true}, nil
		default:
			return configSource{}, err
		}
	}
	return configSource{data: r.opts.Env}, nil
}

// identityWarnings tells when the configuration names another Deployment
// than the one the controller runs as: the key cannot change who it is.
func (r *reconciler) identityWarnings(src configSource) []config.Problem {
	name := src.data[config.KeyDeploymentName]
	if src.configMap == nil || name == "" || name == r.opts.DeploymentName {
		return nil
	}
	return []config.Problem{{
		Key: config.KeyDeploymentName, Value: name,
		Expected: fmt.Sprintf("the controller's own Deployment %q (set by the install, not the ConfigMap); the key is ignored", r.opts.DeploymentName),
	}}
}

// ownDeployment returns the puller's own Deployment, or nil when it does not
// exist (the controller runs outside the cluster, say).
func (r *reconciler) ownDeployment(ctx context.Context) (*appsv1.Deployment, error) {
	var d appsv1.Deployment
	err := r.apiReader.Get(ctx, types.NamespacedName{Namespace: r.opts.Namespace, Name: r.opts.DeploymentName}, &d)
	switch {
	case err == nil:
		return &d, nil
	case apierrors.IsNotFound(err), apierrors.IsForbidden(err):
		return nil, nil
	default:
		return nil, err
	}
}

// beingUninstalled tells whether the puller's own Deployment is being
// deleted, or was seen and is gone. The garbage collector then removes the
// DaemonSet the Deployment owns, and restoring it would leave an orphan.
func (r *reconciler) beingUninstalled(d *appsv1.Deployment) bool {
	gone := (d != nil && d.DeletionTimestamp != nil) || (d == nil && r.sawDeployment)
	if d != nil && d.DeletionTimestamp == nil {
		r.sawDeployment = true
	}
	if gone && !r.uninstalling {
		r.log.Info("the puller Deployment is being deleted; the DaemonSet is left to the garbage collector and not restored")
	}
	r.uninstalling = gone
	return gone
}

// checkNamespace keeps the DaemonSet beside the controller: a namespaced
// Role only reaches there, and an owner reference cannot cross namespaces.
func (r *reconciler) checkNamespace(cfg *config.Config) error {
	if cfg.Namespace == r.opts.Namespace {
		return nil
	}
	return &config.Error{Problems: []config.Problem{{
		Key:      config.KeyNamespace,
		Value:    cfg.Namespace,
		Expected: fmt.Sprintf("the namespace the puller runs in, %q (install the puller in the namespace you want instead)", r.opts.Namespace),
	}}}
}

// kipImage is the image of the init container when KIP_IMAGE is not set: the
// puller's own image, read from its Deployment, or the built-in default.
func (r *reconciler) kipImage(d *appsv1.Deployment) string {
	if d != nil && len(d.Spec.Template.Spec.Containers) > 0 && d.Spec.Template.Spec.Containers[0].Image != "" {
		return d.Spec.Template.Spec.Containers[0].Image
	}
	return r.opts.DefaultKIPImage
}

// foreignController returns the controller of ds when it is not this
// controller's Deployment: another install that names the same DaemonSet.
func foreignController(ds *appsv1.DaemonSet, own *appsv1.Deployment) *metav1.OwnerReference {
	if ds == nil {
		return nil
	}
	ref := metav1.GetControllerOf(ds)
	if ref == nil || (own != nil && ref.UID == own.UID) {
		return nil
	}
	return ref
}

func ownerReference(d *appsv1.Deployment, namespace string) *metav1.OwnerReference {
	if d == nil || d.Namespace != namespace {
		return nil
	}
	return &metav1.OwnerReference{
		APIVersion: "apps/v1",
		Kind:       "Deployment",
		Name:       d.Name,
		UID:        d.UID,
		Controller: ptr.To(true),
	}
}
