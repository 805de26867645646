package daemonset

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/labels"
	"github.com/kip-image-puller/kip/internal/privilege"
)

// Agent mode's fixed parts.
const (
	// AgentComponent is the component label of the agents' DaemonSet.
	AgentComponent = "image-agent"
	// AgentContainer is the agent's one container.
	AgentContainer = "kip-agent"
	// AgentServiceAccount is the agents' ServiceAccount, installed with the
	// puller: it may read and patch Pods in the namespace, so that each
	// agent reports on its own Pod, and read the DaemonSets, so that each
	// agent follows the list on its own.
	AgentServiceAccount = "kip-agent"
	// AnnotationImages on the agents' DaemonSet (not on its pod template)
	// carries IMAGES, which the agents watch: a new list reaches the
	// running agents without restarting them. The digests of the last
	// refresh travel the same way, in AnnotationDigests.
	AnnotationImages = "kip.dev/images"
	// HostRoot is where the host's runtime socket is mounted, read-only,
	// at its path on the host.
	HostRoot = "/host"
	// AgentHealthPort serves /readyz (every image cached) and /healthz.
	AgentHealthPort = 8081
	// AgentImageFs is where the runtime's image store is mounted,
	// read-only, for the agent to measure its filesystem.
	AgentImageFs = HostRoot + "/imagefs"
	// AgentPullSecretDir is where the pull secrets are mounted in the agent.
	AgentPullSecretDir = "/var/run/secrets/kip/pull-secrets" //nolint:gosec // a directory, not a credential
)

// The agent's resources do not depend on the number of images: it holds
// each image's state, a few hundred bytes, and streams nothing itself.
var (
	AgentMemoryRequest = resource.MustParse("32Mi")
	AgentMemoryLimit   = resource.MustParse("96Mi")
	AgentCPURequest    = resource.MustParse("10m")
	AgentCPULimit      = resource.MustParse("200m")
)

// buildAgent returns the agents' DaemonSet: one kip agent per node, with
// the runtime's socket mounted read-only (the socket itself, or, for a
// $(NODE_NAME) socket the installer allowed, the node's own folder of
// sockets), locked down otherwise. Its image is the controller's own
// (opts.AgentImage), never KIP_IMAGE.
func buildAgent(cfg *config.Config, opts Options) *appsv1.DaemonSet {
	name := config.ActiveDaemonSetName(cfg.DaemonSetName, config.ModeAgent)
	image := opts.AgentImage
	if image == "" {
		image = opts.KIPImage
	}
	socket := cfg.CRISocket
	if socket == "" {
		socket = privilege.SocketFor(nil)
	}
	hostPath := &corev1.HostPathVolumeSource{Path: socket, Type: ptr.To(corev1.HostPathSocket)}
	mount := corev1.VolumeMount{Name: "runtime", MountPath: HostRoot + socket, ReadOnly: true}
	socketArg := "--cri-socket=" + HostRoot + socket
	var nodeEnv []corev1.EnvVar
	if prefix, rest, named := config.SplitNodeSocket(socket); named {
		// Only this node's folder: the folder above $(NODE_NAME) is the
		// volume, and the kubelet expands the node's name in subPathExpr.
		hostPath = &corev1.HostPathVolumeSource{Path: prefix, Type: ptr.To(corev1.HostPathDirectory)}
		sub := "$(NODE_NAME)"
		if d := path.Dir(rest); d != "." {
			sub += "/" + d
		}
		mount = corev1.VolumeMount{Name: "runtime", MountPath: HostRoot + "/node", SubPathExpr: sub, ReadOnly: true}
		socketArg = "--cri-socket=" + HostRoot + "/node/" + path.Base(rest)
		nodeEnv = append(nodeEnv, corev1.EnvVar{Name: "NODE_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "spec.nodeName"}}})
	}
	args := []string{"agent", "--daemonset=" + name, "--host-root=" + HostRoot, "--parallelism=" + strconv.Itoa(cfg.PullParallelism),
		"--heal-interval=" + cfg.HealInterval.String(), "--health-addr=:" + strconv.Itoa(AgentHealthPort)}
	args = append(args, socketArg)
	if cfg.MaxNodesPulling > 0 {
		args = append(args, "--max-nodes-pulling="+strconv.Itoa(cfg.MaxNodesPulling), "--pull-slots="+name+"-pull-slot")
	}
	args = append(args, "--pin-budget="+cfg.PinBudget.String(), "--imagefs-free-floor="+cfg.ImageFsFreeFloor.String())
	mounts := []corev1.VolumeMount{mount}
	volumes := []corev1.Volume{{Name: "runtime", VolumeSource: corev1.VolumeSource{HostPath: hostPath}}}
	if store := privilege.ImageStore(socket, opts.AllowedSockets); store != "" {
		storeMount := corev1.VolumeMount{Name: "imagefs", MountPath: AgentImageFs, ReadOnly: true}
		if prefix, rest, named := config.SplitNodeSocket(store); named {
			// As for the socket: the node's own store only.
			store, storeMount.SubPathExpr = prefix, "$(NODE_NAME)/"+rest
		}
		volumes = append(volumes, corev1.Volume{Name: "imagefs", VolumeSource: corev1.VolumeSource{
			HostPath: &corev1.HostPathVolumeSource{Path: store, Type: ptr.To(corev1.HostPathDirectory)}}})
		mounts = append(mounts, storeMount)
		args = append(args, "--image-fs="+AgentImageFs)
	}
	var pullSecrets []corev1.LocalObjectReference
	for i, s := range cfg.ImagePullSecrets {
		pullSecrets = append(pullSecrets, corev1.LocalObjectReference{Name: s})
		vol := "pull-secret-" + strconv.Itoa(i)
		volumes = append(volumes, corev1.Volume{Name: vol, VolumeSource: corev1.VolumeSource{
			Secret: &corev1.SecretVolumeSource{SecretName: s, Optional: ptr.To(true)}}})
		mounts = append(mounts, corev1.VolumeMount{Name: vol, MountPath: AgentPullSecretDir + "/" + s, ReadOnly: true})
	}
	if len(cfg.ImagePullSecrets) > 0 {
		args = append(args, "--pull-secret-dir="+AgentPullSecretDir, "--pull-secrets="+strings.Join(cfg.ImagePullSecrets, ","))
	}
	probe := func(p string, period int32) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: p, Port: intstr.FromInt32(AgentHealthPort)}},
			PeriodSeconds: period, FailureThreshold: 3}
	}
	container := corev1.Container{
		Name:            AgentContainer,
		Image:           image,
		ImagePullPolicy: corev1.PullIfNotPresent,
		Command:         []string{"/usr/bin/kip"},
		Args:            args,
		Env: append([]corev1.EnvVar{
			{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name"}}},
			{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}},
		}, nodeEnv...),
		Ports: []corev1.ContainerPort{{Name: "health", ContainerPort: AgentHealthPort}},
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceMemory: AgentMemoryRequest, corev1.ResourceCPU: AgentCPURequest},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: AgentMemoryLimit, corev1.ResourceCPU: AgentCPULimit},
		},
		ReadinessProbe: probe("/readyz", 5),
		LivenessProbe:  probe("/healthz", 20),
		VolumeMounts:   mounts,
		// Root, to connect to the runtime's socket (owned by root), and
		// nothing more: no capability, no escalation, a read-only root.
		SecurityContext: &corev1.SecurityContext{
			RunAsUser:                ptr.To[int64](0),
			RunAsNonRoot:             ptr.To(false),
			AllowPrivilegeEscalation: ptr.To(false),
			ReadOnlyRootFilesystem:   ptr.To(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
	podLabels := agentLabels(name)
	ds := &appsv1.DaemonSet{
		TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "DaemonSet"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Namespace:   cfg.Namespace,
			Labels:      agentLabels(name),
			Annotations: daemonSetAnnotations(cfg, opts.Refresh.Digests),
		},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: SelectorLabels(name)},
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{
				Type:          appsv1.RollingUpdateDaemonSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxUnavailable: ptr.To(intstr.FromString("100%"))},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels},
				Spec: corev1.PodSpec{
					Containers:         []corev1.Container{container},
					Volumes:            volumes,
					NodeSelector:       cfg.NodeSelector,
					Affinity:           cfg.Affinity,
					Tolerations:        tolerations(cfg),
					ImagePullSecrets:   pullSecrets,
					ServiceAccountName: AgentServiceAccount,
					SecurityContext: &corev1.PodSecurityContext{
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					EnableServiceLinks:            ptr.To(false),
					TerminationGracePeriodSeconds: ptr.To[int64](10),
				},
			},
		},
	}
	if ds.Annotations == nil {
		ds.Annotations = map[string]string{}
	}
	ds.Annotations[AnnotationImages] = imagesValue(cfg.Images)
	if opts.Owner != nil {
		ds.OwnerReferences = []metav1.OwnerReference{*opts.Owner}
	}
	return ds
}

func agentLabels(name string) map[string]string {
	l := Labels(name)
	l[labels.Component] = AgentComponent
	return l
}

// imagesValue writes images back in the IMAGES format.
func imagesValue(images []config.Image) string {
	var b strings.Builder
	for _, img := range images {
		b.WriteString(img.Name + "=" + img.Ref + ";")
	}
	return b.String()
}

// IsAgents tells whether ds is an agents' DaemonSet, not one of sleeping
// containers.
func IsAgents(ds *appsv1.DaemonSet) bool {
	for _, c := range ds.Spec.Template.Spec.Containers {
		if c.Name == AgentContainer {
			return true
		}
	}
	return false
}

// AgentImages reads the images an agents' DaemonSet caches, from its
// AnnotationImages.
func AgentImages(ds *appsv1.DaemonSet) ([]config.Image, error) {
	v, ok := ds.Annotations[AnnotationImages]
	if !ok {
		return nil, fmt.Errorf("DaemonSet %s/%s: no annotation %s", ds.Namespace, ds.Name, AnnotationImages)
	}
	images, err := config.ParseImages(v)
	if err != nil {
		return nil, fmt.Errorf("DaemonSet %s/%s: annotation %s: %w", ds.Namespace, ds.Name, AnnotationImages, err)
	}
	return images, nil
}
