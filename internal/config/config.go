// Package config is the image puller's configuration contract: the keys of
// the ConfigMap (or environment) users already have, their defaults, and a
// validation that reports every problem at once, each naming the key, the
// offending value and what is expected. It is pure: no client, no I/O.
package config

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// The configuration keys, exactly as existing ConfigMaps spell them.
const (
	KeyImages               = "IMAGES"
	KeyCachingIntervalHours = "CACHING_INTERVAL_HOURS"
	KeyMemoryRequest        = "CACHING_MEMORY_REQUEST"
	KeyMemoryLimit          = "CACHING_MEMORY_LIMIT"
	KeyCPURequest           = "CACHING_CPU_REQUEST"
	KeyCPULimit             = "CACHING_CPU_LIMIT"
	KeyDaemonSetName        = "DAEMONSET_NAME"
	KeyDeploymentName       = "DEPLOYMENT_NAME"
	KeyNamespace            = "NAMESPACE"
	KeyNodeSelector         = "NODE_SELECTOR"
	KeyImagePullSecrets     = "IMAGE_PULL_SECRETS" //nolint:gosec // G101: the name of a key that lists Secret names, not a credential
	KeyAffinity             = "AFFINITY"
	KeyTolerations          = "TOLERATIONS"
	KeyKIPImage             = "KIP_IMAGE"
	KeyDaemonSetAnnotations = "DAEMONSET_ANNOTATIONS"
	KeyCachingMode          = "CACHING_MODE"
	KeyPullParallelism      = "PULL_PARALLELISM"
	KeyHealInterval         = "HEAL_INTERVAL"
	KeyCRISocket            = "CRI_SOCKET"
	KeyMaxNodesPulling      = "MAX_NODES_PULLING"
	KeyNodeCondition        = "NODE_CONDITION"
	KeyWarmNodeTaint        = "WARM_NODE_TAINT"
	KeyWarmNodeTimeout      = "WARM_NODE_TIMEOUT"
	KeyPinBudget            = "PIN_BUDGET"
	KeyImageFsFreeFloor     = "IMAGEFS_FREE_FLOOR"
)

// The caching modes: CACHING_MODE's values.
const (
	// ModeDaemonSet holds each image with a sleeping container per node,
	// pulled by the kubelet: the documented mode, with no privileges.
	ModeDaemonSet = "daemonset"
	// ModeAgent runs one agent per node that pulls through the runtime's
	// CRI socket and pins what it pulled.
	ModeAgent = "agent"
)

// Keys lists every key of the contract, in documentation order.
var Keys = []string{
	KeyImages, KeyCachingIntervalHours,
	KeyMemoryRequest, KeyMemoryLimit, KeyCPURequest, KeyCPULimit,
	KeyDaemonSetName, KeyDeploymentName, KeyNamespace,
	KeyNodeSelector, KeyImagePullSecrets, KeyAffinity, KeyTolerations,
	KeyKIPImage, KeyDaemonSetAnnotations,
	KeyCachingMode, KeyPullParallelism, KeyHealInterval, KeyCRISocket, KeyMaxNodesPulling,
	KeyNodeCondition, KeyWarmNodeTaint, KeyWarmNodeTimeout,
	KeyPinBudget, KeyImageFsFreeFloor,
}

// Defaults are the documented defaults of every key that has one. IMAGES has
// none (it is required) and KIP_IMAGE defaults to the puller's own image,
// which only the caller knows.
var Defaults = map[string]string{
	KeyCachingIntervalHours: "1",
	KeyMemoryRequest:        "10Mi",
	KeyMemoryLimit:          "20Mi",
	KeyCPURequest:           ".05",
	KeyCPULimit:             ".2",
	KeyDaemonSetName:        "kubernetes-image-puller",
	KeyDeploymentName:       "kubernetes-image-puller",
	KeyNamespace:            "k8s-image-puller",
	KeyNodeSelector:         "{}",
	KeyImagePullSecrets:     "",
	KeyAffinity:             "{}",
	KeyTolerations:          "[]",
	KeyDaemonSetAnnotations: "{}",
	KeyCachingMode:          ModeDaemonSet,
	KeyPullParallelism:      "16",
	KeyHealInterval:         "5m",
	KeyCRISocket:            "",
	KeyMaxNodesPulling:      "0",
	KeyNodeCondition:        "false",
	KeyWarmNodeTaint:        "",
	KeyWarmNodeTimeout:      "30m",
	KeyPinBudget:            DefaultPinBudget,
	KeyImageFsFreeFloor:     DefaultImageFsFreeFloor,
}

// The disk defaults of agent mode, against the kubelet's own: its image
// garbage collection starts at 85% of the image filesystem and frees down to
// 80% (imageGCHighThresholdPercent, imageGCLowThresholdPercent), and it
// evicts pods below 15% free (imagefs.available). Pins are never collected,
// so at most 60% of the filesystem is pinned, which leaves the collector
// room to work; and the agent pulls nothing that would leave less than 20%
// free, so its pulls alone never start a collection nor an eviction.
const (
	DefaultPinBudget        = "60%"
	DefaultImageFsFreeFloor = "20%"
)

// AgentSuffix ends the name of the agents' DaemonSet: DAEMONSET_NAME and
// DAEMONSET_NAME-agent can run side by side while the mode changes, the new
// one holding every image before the old one goes.
const AgentSuffix = "-agent"

// ActiveDaemonSetName is the name of the DaemonSet that caches the images in
// mode, for DAEMONSET_NAME name.
func ActiveDaemonSetName(name, mode string) string {
	if mode == ModeAgent {
		return name + AgentSuffix
	}
	return name
}

// ActiveDaemonSet is the name of the DaemonSet that caches the images for
// configuration data, valid or not: what status readers look at.
func ActiveDaemonSet(data map[string]string) string {
	return ActiveDaemonSetName(Value(data, KeyDaemonSetName), Value(data, KeyCachingMode))
}

// DefaultConfigMapName is the name of the ConfigMap the puller reads.
const DefaultConfigMapName = "k8s-image-puller"

// Image is one IMAGES entry: a container name and the image it caches.
type Image struct {
	Name string
	Ref  string
	// Digest is true when Ref pins a digest, so it never needs a refresh.
	Digest bool
}

// Config is a parsed, defaulted and valid configuration.
type Config struct {
	Images               []Image
	CachingIntervalHours int
	MemoryRequest        resource.Quantity
	MemoryLimit          resource.Quantity
	CPURequest           resource.Quantity
	CPULimit             resource.Quantity
	DaemonSetName        string
	DeploymentName       string
	Namespace            string
	NodeSelector         map[string]string
	ImagePullSecrets     []string
	Affinity             *corev1.Affinity
	Tolerations          []corev1.Toleration
	// KIPImage is empty when KIP_IMAGE is not set; the caller then supplies
	// the puller's own image.
	KIPImage             string
	DaemonSetAnnotations map[string]string
	// CachingMode is ModeDaemonSet or ModeAgent.
	CachingMode string
	// PullParallelism, HealInterval and CRISocket are the agent's settings
	// (agent mode only): pulls at once per node, how often it checks that
	// the runtime still holds every image, and the runtime's socket on the
	// host ("" probes the usual paths).
	PullParallelism int
	HealInterval    time.Duration
	CRISocket       string
	// MaxNodesPulling bounds how many nodes pull at once; 0: no bound.
	MaxNodesPulling int
	// NodeCondition keeps the condition ImagesCached on each selected node.
	NodeCondition bool
	// WarmNodeTaint is a startup taint's key: the puller's pods tolerate
	// it, and it is removed from a node once the node is warm, or once
	// WarmNodeTimeout has passed since the node was created (0: no bound).
	WarmNodeTaint   string
	WarmNodeTimeout time.Duration
	// PinBudget bounds the bytes the agent pins on a node, and
	// ImageFsFreeFloor the free space it leaves on the node's image
	// filesystem (agent mode).
	PinBudget        DiskShare
	ImageFsFreeFloor DiskShare
	// Skipped holds a problem for each IMAGES entry left out because it is
	// invalid; the valid entries are cached all the same.
	Skipped []Problem
}
