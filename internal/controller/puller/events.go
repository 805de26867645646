package puller

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/record"

	"github.com/kip-image-puller/kip/internal/config"
)

// maxEventNote bounds an Event's message, as the events.k8s.io/v1 note is.
const maxEventNote = 1024

// eventSink records Kubernetes Events. It uses the core/v1 recorder on
// purpose: the events.k8s.io recorder folds every Event with the same
// object, reason and action into one series and keeps only the first note,
// so "app7 failing on node2" would vanish behind "app7 failing on node1".
// The core recorder counts identical Events and keeps distinct ones.
type eventSink struct {
	rec record.EventRecorder
}

// emit records an Event about obj; without an object or a recorder the
// caller's log line is the only report.
func (s eventSink) emit(obj runtime.Object, eventType, reason, format string, args ...any) {
	s.emitAnnotated(obj, nil, eventType, reason, format, args...)
}

// emitAnnotated records an Event that carries annotations.
func (s eventSink) emitAnnotated(obj runtime.Object, annotations map[string]string, eventType, reason, format string, args ...any) {
	if obj == nil || s.rec == nil {
		return
	}
	note := fmt.Sprintf(format, args...)
	if len(note) > maxEventNote {
		note = note[:maxEventNote-3] + "..."
	}
	s.rec.AnnotatedEventf(obj, annotations, eventType, reason, "%s", note)
}

// Event reasons, one per kind of news.
const (
	ReasonInvalidConfiguration = config.ReasonInvalidConfiguration
	ReasonConfigurationValid   = "ConfigurationValid"
	ReasonApplied              = "Applied"
	ReasonRestored             = "Restored"
	ReasonApplyFailed          = "ApplyFailed"
	ReasonImageChanged         = "ImageChanged"
	ReasonResolveFailed        = "ResolveFailed"
	ReasonConfigurationWarning = "ConfigurationWarning"
	ReasonConfigMapMissing     = "ConfigMapMissing"
	ReasonConfigMapFound       = "ConfigMapFound"
	ReasonConflict             = "Conflict"
	ReasonRetired              = "Retired"
	ReasonInvalidImageEntries  = "InvalidImageEntries"
)

// reportConflict tells, once per owner, that the DaemonSet belongs to
// another controller, and returns whether it does.
func (r *reconciler) reportConflict(ds *appsv1.DaemonSet, own *appsv1.Deployment) bool {
	ref := foreignController(ds, own)
	key := ""
	if ref != nil {
		key = string(ref.UID)
	}
	if ref != nil && key != r.lastConflict {
		msg := fmt.Sprintf("DaemonSet %s is controlled by %s %s, not by this puller (Deployment %s); it is left alone: give this puller another DAEMONSET_NAME, or remove the other install",
			ds.Name, ref.Kind, ref.Name, r.opts.DeploymentName)
		r.log.Error(nil, msg, "daemonset", ds.Name, "controller", ref.Kind+"/"+ref.Name)
		r.events.emit(ds, corev1.EventTypeWarning, ReasonConflict, "%s", msg)
	}
	r.lastConflict = key
	return ref != nil
}

// reportMissingConfigMap tells, once, that the watched ConfigMap is gone and
// that the last applied DaemonSet stays; and, once, that it is back. It
// returns whether the ConfigMap is missing.
func (r *reconciler) reportMissingConfigMap(src configSource, d *appsv1.Deployment) bool {
	var regarding runtime.Object
	if d != nil {
		regarding = d
	}
	switch {
	case src.missing && !r.configMapMissing:
		r.log.Error(nil, "the ConfigMap does not exist; the last applied DaemonSet stays in place until it is created again", "configmap", r.opts.ConfigMapName)
		r.events.emit(regarding, corev1.EventTypeWarning, ReasonConfigMapMissing,
			"ConfigMap %s not found; the last applied DaemonSet stays in place; create the ConfigMap to resume", r.opts.ConfigMapName)
	case !src.missing && r.configMapMissing:
		r.log.Info("the ConfigMap exists again; resuming", "configmap", r.opts.ConfigMapName)
		r.events.emit(regarding, corev1.EventTypeNormal, ReasonConfigMapFound, "ConfigMap %s found; resuming", r.opts.ConfigMapName)
	}
	r.configMapMissing = src.missing
	return src.missing
}

// reportInvalid tells, once per distinct error, that the configuration
// whose Fingerprint is fingerprint is refused; the Event carries it.
func (r *reconciler) reportInvalid(regarding runtime.Object, err error, fingerprint string) {
	configInvalid.Set(1)
	msg := err.Error()
	key := fingerprint + " " + msg
	if key == r.lastInvalid {
		return
	}
	r.lastInvalid = key
	configErrors.Inc()
	var cfgErr *config.Error
	if errors.As(err, &cfgErr) {
		r.log.Error(nil, "invalid configuration; the last applied DaemonSet stays in place", "keys", cfgErr.Keys(), "problems", problemStrings(cfgErr.Problems))
	} else {
		r.log.Error(err, "invalid configuration; the last applied DaemonSet stays in place")
	}
	r.events.emitAnnotated(regarding, map[string]string{config.AnnotationFingerprint: fingerprint},
		corev1.EventTypeWarning, ReasonInvalidConfiguration, "%s; the last applied DaemonSet stays in place (configuration %s)", msg, fingerprint)
}

func (r *reconciler) reportValid(regarding runtime.Object, warnings []config.Problem) {
	configInvalid.Set(0)
	if r.lastInvalid != "" {
		r.events.emit(regarding, corev1.EventTypeNormal, ReasonConfigurationValid, "the configuration is valid again")
		r.lastInvalid = ""
	}
	text := strings.Join(problemStrings(warnings), "; ")
	if text != "" && text != r.lastWarnings {
		r.log.Info("configuration warnings", "warnings", problemStrings(warnings))
		r.events.emit(regarding, corev1.EventTypeWarning, ReasonConfigurationWarning, "%s", text)
	}
	r.lastWarnings = text
}

// reportSkipped tells, once per distinct set, which IMAGES entries are left
// out because they are invalid, while the others are cached.
func (r *reconciler) reportSkipped(regarding runtime.Object, skipped []config.Problem, cached int) {
	imagesInvalid.Set(float64(len(skipped)))
	text := strings.Join(problemStrings(skipped), "; ")
	if text != "" && text != r.lastSkipped {
		r.log.Error(nil, "invalid IMAGES entries left out; the other images are cached", "problems", problemStrings(skipped), "cached", cached)
		r.events.emit(regarding, corev1.EventTypeWarning, ReasonInvalidImageEntries,
			"%d IMAGES entries left out, the other %d images are cached: %s", len(skipped), cached, text)
	}
	r.lastSkipped = text
}

// reportResolveFailures tells, once per distinct failure, which tags or pull
// secrets the last refresh could not use.
func (r *reconciler) reportResolveFailures(ds *appsv1.DaemonSet, failures map[string]string) {
	var keys []string
	for k, v := range failures {
		if r.lastFailures[k] != v {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		r.log.Error(nil, "refresh could not resolve; the recorded digest is kept and nothing rolls", "image", k, "error", failures[k])
		r.events.emit(ds, corev1.EventTypeWarning, ReasonResolveFailed, "%s: %s", k, failures[k])
	}
	r.lastFailures = failures
}

// eventTarget is what configuration Events are about: the ConfigMap, or the
// Deployment when the configuration comes from the environment.
func eventTarget(src configSource, d *appsv1.Deployment) runtime.Object {
	switch {
	case src.configMap != nil:
		return src.configMap
	case d != nil:
		return d
	}
	return nil
}

func problemStrings(ps []config.Problem) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}
