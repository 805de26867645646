package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// KubernetesImagePullerSpec configures one image puller. Every field is a
// string, as in the existing operator; an empty one means the default.
type KubernetesImagePullerSpec struct {
	// ConfigMapName is the puller's ConfigMap (default k8s-image-puller).
	// +optional
	ConfigMapName string `json:"configMapName,omitempty"`
	// DeploymentName is the puller's Deployment (default kubernetes-image-puller).
	// +optional
	DeploymentName string `json:"deploymentName,omitempty"`
	// DaemonsetName is DAEMONSET_NAME.
	// +optional
	DaemonsetName string `json:"daemonsetName,omitempty"`
	// Images is IMAGES: NAME-1=IMAGE-1;NAME-2=IMAGE-2.
	// +optional
	Images string `json:"images,omitempty"`
	// CachingIntervalHours is CACHING_INTERVAL_HOURS.
	// +optional
	CachingIntervalHours string `json:"cachingIntervalHours,omitempty"`
	// CachingMemoryRequest is CACHING_MEMORY_REQUEST.
	// +optional
	CachingMemoryRequest string `json:"cachingMemoryRequest,omitempty"`
	// CachingMemoryLimit is CACHING_MEMORY_LIMIT.
	// +optional
	CachingMemoryLimit string `json:"cachingMemoryLimit,omitempty"`
	// CachingCPURequest is CACHING_CPU_REQUEST.
	// +optional
	CachingCPURequest string `json:"cachingCPURequest,omitempty"`
	// CachingCPULimit is CACHING_CPU_LIMIT.
	// +optional
	CachingCPULimit string `json:"cachingCPULimit,omitempty"`
	// NodeSelector is NODE_SELECTOR, a JSON object.
	// +optional
	NodeSelector string `json:"nodeSelector,omitempty"`
	// ImagePullSecrets is IMAGE_PULL_SECRETS: secret1;secret2.
	// +optional
	ImagePullSecrets string `json:"imagePullSecrets,omitempty"`
	// Affinity is AFFINITY, a JSON core/v1 Affinity.
	// +optional
	Affinity string `json:"affinity,omitempty"`
	// Tolerations is TOLERATIONS, a JSON array of core/v1 Tolerations.
	// +optional
	Tolerations string `json:"tolerations,omitempty"`
	// ImagePullerImage is the puller's image and KIP_IMAGE.
	// +optional
	ImagePullerImage string `json:"imagePullerImage,omitempty"`
	// CachingMode is CACHING_MODE: daemonset (the default, a sleeping
	// container per image) or agent (one agent per node pulls through the
	// runtime's CRI socket and pins; needs a privileged namespace).
	// +optional
	CachingMode string `json:"cachingMode,omitempty"`
	// PullParallelism is PULL_PARALLELISM: agent mode, pulls at once per node.
	// +optional
	PullParallelism string `json:"pullParallelism,omitempty"`
	// HealInterval is HEAL_INTERVAL: agent mode, how often each agent checks
	// that its runtime still holds every image, such as 5m.
	// +optional
	HealInterval string `json:"healInterval,omitempty"`
	// CRISocket is CRI_SOCKET: agent mode, the runtime's socket on the
	// nodes; empty probes the usual paths.
	// +optional
	CRISocket string `json:"criSocket,omitempty"`
	// MaxNodesPulling is MAX_NODES_PULLING: agent mode, how many nodes pull
	// at the same time; 0 or empty, no bound.
	// +optional
	MaxNodesPulling string `json:"maxNodesPulling,omitempty"`
	// NodeCondition is NODE_CONDITION: "true" keeps the condition
	// kip.dev/ImagesCached on each selected node.
	// +optional
	NodeCondition string `json:"nodeCondition,omitempty"`
	// WarmNodeTaint is WARM_NODE_TAINT: a startup taint's key, tolerated by
	// the puller's pods and removed from a node once it holds every image.
	// +optional
	WarmNodeTaint string `json:"warmNodeTaint,omitempty"`
	// WarmNodeTimeout is WARM_NODE_TIMEOUT: the longest a node keeps
	// WarmNodeTaint while not warm, from its creation, such as 30m; 0 is no
	// bound.
	// +optional
	WarmNodeTimeout string `json:"warmNodeTimeout,omitempty"`
	// PinBudget is PIN_BUDGET: agent mode, the most each agent pins on its
	// node, a percentage of the image filesystem (such as 60%) or a size
	// (such as 20Gi).
	// +optional
	PinBudget string `json:"pinBudget,omitempty"`
	// ImageFsFreeFloor is IMAGEFS_FREE_FLOOR: agent mode, the free space
	// each agent leaves on its node's image filesystem: it pulls nothing
	// that would leave less. A percentage (such as 20%) or a size.
	// +optional
	ImageFsFreeFloor string `json:"imageFsFreeFloor,omitempty"`
}

// FailingImage is one image failing on one node.
type FailingImage struct {
	// Node is where the image fails.
	Node string `json:"node"`
	// Image is the image reference.
	Image string `json:"image"`
	// Name is the image's entry name in images.
	// +optional
	Name string `json:"name,omitempty"`
	// Reason is the kubelet's, such as ImagePullBackOff.
	Reason string `json:"reason"`
	// Message is the kubelet's.
	// +optional
	Message string `json:"message,omitempty"`
}

// NodeDisk is what a node's agent measured of its image filesystem.
type NodeDisk struct {
	// Node is the node's name.
	Node string `json:"node"`
	// CachedBytes and PinnedBytes add up the configured images held on
	// the node, and those of them pinned.
	CachedBytes int64 `json:"cachedBytes"`
	PinnedBytes int64 `json:"pinnedBytes"`
	// PinBudgetBytes is pinBudget on this node; -1 for a percentage of a
	// filesystem the agent cannot see.
	PinBudgetBytes int64 `json:"pinBudgetBytes"`
	// AvailableBytes and CapacityBytes are the image filesystem's, when
	// the agent can see it.
	// +optional
	AvailableBytes int64 `json:"availableBytes,omitempty"`
	// +optional
	CapacityBytes int64 `json:"capacityBytes,omitempty"`
	// OverBudget names the images held on the node but not pinned, past
	// pinBudget in the images' order.
	// +optional
	OverBudget []string `json:"overBudget,omitempty"`
}

// KubernetesImagePullerStatus tells what is cached where.
type KubernetesImagePullerStatus struct {
	// ImagePullerImage is the puller image in use.
	// +optional
	ImagePullerImage string `json:"imagePullerImage,omitempty"`
	// Conditions: Ready (every configured image cached on every selected
	// node), Progressing, Degraded.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// ImagesCached is "cached/wanted" over the selected nodes.
	// +optional
	ImagesCached string `json:"imagesCached,omitempty"`
	// NodesWarm is "warm/selected".
	// +optional
	NodesWarm string `json:"nodesWarm,omitempty"`
	// NodesTainted counts the selected nodes that still carry
	// warmNodeTaint, kept from workloads while they warm.
	// +optional
	NodesTainted int32 `json:"nodesTainted,omitempty"`
	// Failing lists the images failing, by node.
	// +optional
	Failing []FailingImage `json:"failing,omitempty"`
	// Disk is, in agent mode, what the agents measured: at most 20 nodes,
	// those with images past pinBudget first, then the most pinned.
	// +optional
	Disk []NodeDisk `json:"disk,omitempty"`
	// DiskNodesOmitted counts the nodes with a measure that Disk leaves out.
	// +optional
	DiskNodesOmitted int32 `json:"diskNodesOmitted,omitempty"`
	// ObservedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// KubernetesImagePuller keeps a list of images cached on every selected node.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:path=kubernetesimagepullers,scope=Namespaced
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Images",type=string,JSONPath=`.status.imagesCached`,description="images cached of images wanted"
// +kubebuilder:printcolumn:name="Nodes",type=string,JSONPath=`.status.nodesWarm`,description="nodes holding every image"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type KubernetesImagePuller struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   KubernetesImagePullerSpec   `json:"spec,omitempty"`
	Status KubernetesImagePullerStatus `json:"status,omitempty"`
}

// KubernetesImagePullerList is a list of KubernetesImagePullers.
// +kubebuilder:object:root=true
type KubernetesImagePullerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []KubernetesImagePuller `json:"items"`
}
