// Package daemonset builds the image-caching DaemonSet from a Config. It is a
// pure, deterministic function: the same inputs give a byte-identical object,
// with one container per IMAGES entry in IMAGES order.
package daemonset

import (
	"encoding/json"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/labels"
	"github.com/kip-image-puller/kip/internal/nodewarm"
)

// Label values and annotations of the DaemonSet (the label keys are in
// package labels).
const (
	AppName   = "kubernetes-image-puller"
	Component = "image-cache"

	// AnnotationDigests on the DaemonSet records, as a JSON object, the
	// digest each mutable tag resolved to at the last refresh.
	AnnotationDigests = "kip.dev/digests"
	// AnnotationRollout on the pod template changes only when a recorded
	// digest changed, which rolls the pods so the nodes pull the new image.
	AnnotationRollout = "kip.dev/rollout"
)

// Fixed parts of the pod shape.
const (
	SleepVolume    = "kip-bin"
	SleepMountPath = "/kip"
	SleepPath      = SleepMountPath + "/sleep"
	// SleepSource is where the project's image holds the sleeper.
	SleepSource = "/usr/bin/kip-sleep"
	// SleepDuration matches the existing puller: long enough that the image
	// stays in use between refreshes.
	SleepDuration = "720h"
	// NonRootUID is used outside OpenShift, where no SCC assigns a UID.
	NonRootUID = 65532
)

// SleepVolumeSize is the emptyDir limit, as in the existing puller.
var SleepVolumeSize = resource.MustParse("50Mi")

// RefreshState is what the last digest refresh recorded.
type RefreshState struct {
	// Digests maps image references (tags) to the digest they resolved to.
	Digests map[string]string
	// Rollout changes whenever a recorded digest changed.
	Rollout string
}

// Options are the inputs that do not come from the Config.
type Options struct {
	// KIPImage is the init container image when the Config has none.
	KIPImage string
	// AgentImage is the agents' image: the controller's own, by digest
	// (privilege.ImageByDigest). KIP_IMAGE never chooses it; KIPImage
	// stands in where it is empty (kip render, offline).
	AgentImage string
	// OpenShift leaves the UID to the Security Context Constraints.
	OpenShift bool
	// AllowedSockets are the installer's --cri-socket-allow values: an
	// extra socket paired with its runtime's image store (SOCKET=STORE)
	// has the store mounted into the agents, as a known socket has.
	AllowedSockets []string
	// Owner, when set, becomes the controller owner reference.
	Owner   *metav1.OwnerReference
	Refresh RefreshState
}

// SelectorLabels select the puller's pods; they never change for a given
// DaemonSet name, as a DaemonSet's selector is immutable.
func SelectorLabels(dsName string) map[string]string {
	return map[string]string{labels.Name: AppName, labels.Instance: dsName}
}

// Labels are the recommended labels of the DaemonSet and its pods.
func Labels(dsName string) map[string]string {
	l := SelectorLabels(dsName)
	l[labels.Component] = Component
	l[labels.PartOf] = AppName
	l[labels.ManagedBy] = labels.ManagedByPuller
	return l
}

// Build returns the DaemonSet for cfg.
func Build(cfg *config.Config, opts Options) *appsv1.DaemonSet {
	kipImage := cfg.KIPImage
	if kipImage == "" {
		kipImage = opts.KIPImage
	}
	if cfg.CachingMode == config.ModeAgent {
		return buildAgent(cfg, opts)
	}
	resources := corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceMemory: cfg.MemoryRequest, corev1.ResourceCPU: cfg.CPURequest},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: cfg.MemoryLimit, corev1.ResourceCPU: cfg.CPULimit},
	}
	mount := corev1.VolumeMount{Name: SleepVolume, MountPath: SleepMountPath, ReadOnly: true}

	containers := make([]corev1.Container, 0, len(cfg.Images))
	for _, img := range cfg.Images {
		policy := corev1.PullAlways // a roll re-pulls the tag; unchanged layers are not fetched again
		if img.Digest {
			policy = corev1.PullIfNotPresent
		}
		containers = append(containers, corev1.Container{
			Name:                     img.Name,
			Image:                    img.Ref,
			ImagePullPolicy:          policy,
			Command:                  []string{SleepPath},
			Args:                     []string{SleepDuration},
			Resources:                *resources.DeepCopy(),
			VolumeMounts:             []corev1.VolumeMount{mount},
			SecurityContext:          containerSecurityContext(),
			TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		})
	}
	install := mount
	install.ReadOnly = false
	initContainer := corev1.Container{
		Name:                     config.ReservedContainerName,
		Image:                    kipImage,
		ImagePullPolicy:          corev1.PullIfNotPresent,
		Command:                  []string{SleepSource, "--install", SleepPath},
		Resources:                *resources.DeepCopy(),
		VolumeMounts:             []corev1.VolumeMount{install},
		SecurityContext:          containerSecurityContext(),
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}

	var pullSecrets []corev1.LocalObjectReference
	for _, s := range cfg.ImagePullSecrets {
		pullSecrets = append(pullSecrets, corev1.LocalObjectReference{Name: s})
	}

	podSecurity := &corev1.PodSecurityContext{
		RunAsNonRoot:   ptr.To(true),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	if !opts.OpenShift {
		podSecurity.RunAsUser = ptr.To[int64](NonRootUID)
		podSecurity.RunAsGroup = ptr.To[int64](NonRootUID)
	}

	var templateAnnotations map[string]string
	if opts.Refresh.Rollout != "" {
		templateAnnotations = map[string]string{AnnotationRollout: opts.Refresh.Rollout}
	}

	ds := &appsv1.DaemonSet{
		TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "DaemonSet"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        cfg.DaemonSetName,
			Namespace:   cfg.Namespace,
			Labels:      Labels(cfg.DaemonSetName),
			Annotations: daemonSetAnnotations(cfg, opts.Refresh.Digests),
		},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: SelectorLabels(cfg.DaemonSetName)},
			// Every node at once: a rolling update waits for each new pod to be
			// Ready, and one image that cannot be pulled would stop every other
			// node from getting the new images. Replacing a pod does not drop the
			// images from the node; its successor runs them again in seconds.
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{
				Type: appsv1.RollingUpdateDaemonSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDaemonSet{
					MaxUnavailable: ptr.To(intstr.FromString("100%")),
				},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels:      Labels(cfg.DaemonSetName),
					Annotations: templateAnnotations,
				},
				Spec: corev1.PodSpec{
					InitContainers:                []corev1.Container{initContainer},
					Containers:                    containers,
					Volumes:                       []corev1.Volume{sleepVolume()},
					NodeSelector:                  cfg.NodeSelector,
					Affinity:                      cfg.Affinity,
					Tolerations:                   tolerations(cfg),
					ImagePullSecrets:              pullSecrets,
					SecurityContext:               podSecurity,
					AutomountServiceAccountToken:  ptr.To(false),
					EnableServiceLinks:            ptr.To(false),
					TerminationGracePeriodSeconds: ptr.To[int64](5),
				},
			},
		},
	}
	if opts.Owner != nil {
		ds.OwnerReferences = []metav1.OwnerReference{*opts.Owner}
	}
	return ds
}

func containerSecurityContext() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		RunAsNonRoot:             ptr.To(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
}

func sleepVolume() corev1.Volume {
	size := SleepVolumeSize
	return corev1.Volume{
		Name:         SleepVolume,
		VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: &size}},
	}
}

// daemonSetAnnotations are DAEMONSET_ANNOTATIONS, the digests of the last
// refresh, and what NODE_CONDITION and WARM_NODE_TAINT ask of the status
// reporter.
func daemonSetAnnotations(cfg *config.Config, digests map[string]string) map[string]string {
	settings := nodeSettings(cfg).Encode()
	if len(cfg.DaemonSetAnnotations) == 0 && len(digests) == 0 && settings == "" {
		return nil
	}
	out := map[string]string{}
	for k, v := range cfg.DaemonSetAnnotations {
		out[k] = v
	}
	if len(digests) > 0 {
		out[AnnotationDigests] = EncodeDigests(digests)
	}
	if settings != "" {
		out[nodewarm.AnnotationSettings] = settings
	}
	return out
}

// nodeSettings are the node warmer's settings of cfg.
func nodeSettings(cfg *config.Config) nodewarm.Settings {
	s := nodewarm.Settings{Condition: cfg.NodeCondition, Taint: cfg.WarmNodeTaint}
	if s.Taint != "" {
		s.Timeout = cfg.WarmNodeTimeout
	}
	return s
}

// tolerations are TOLERATIONS, and the startup taint's where one is set:
// the puller's pods must run on a node that carries it.
func tolerations(cfg *config.Config) []corev1.Toleration {
	if cfg.WarmNodeTaint == "" {
		return cfg.Tolerations
	}
	return append(append([]corev1.Toleration{}, cfg.Tolerations...), nodewarm.Toleration(cfg.WarmNodeTaint))
}

// EncodeDigests renders recorded digests as the AnnotationDigests value
// (JSON with sorted keys).
func EncodeDigests(digests map[string]string) string {
	b, _ := json.Marshal(digests) // map[string]string always marshals; keys come out sorted
	return string(b)
}

// RecordedRefresh reads the refresh state back from a live DaemonSet. A
// missing or unreadable annotation yields an empty state, which only means
// the next refresh records digests afresh without rolling.
func RecordedRefresh(ds *appsv1.DaemonSet) RefreshState {
	if ds == nil {
		return RefreshState{}
	}
	var digests map[string]string
	if v := ds.Annotations[AnnotationDigests]; v != "" {
		_ = json.Unmarshal([]byte(v), &digests)
	}
	return RefreshState{Digests: digests, Rollout: ds.Spec.Template.Annotations[AnnotationRollout]}
}

// TaggedRefs lists the image references of cfg that can move (tags, not
// digests), sorted and without repeats.
func TaggedRefs(cfg *config.Config) []string {
	seen := map[string]bool{}
	var refs []string
	for _, img := range cfg.Images {
		if !img.Digest && !seen[img.Ref] {
			seen[img.Ref] = true
			refs = append(refs, img.Ref)
		}
	}
	sort.Strings(refs)
	return refs
}
