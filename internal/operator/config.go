// Package operator is the pure core of the KubernetesImagePuller operator:
// from a resource to the puller's configuration and objects, from what the
// cluster shows to the resource's status, and from a CheCluster to the
// resource it asks for. Nothing here talks to a cluster.
package operator

import (
	"errors"
	"fmt"
	"strings"

	"github.com/kip-image-puller/kip/api/v1alpha1"
	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/daemonset"

	"k8s.io/apimachinery/pkg/util/validation"
)

// field is one spec field and the configuration key it sets.
type field struct {
	name  string // the JSON name, as users write it
	key   string // the configuration key; "" for the ones the operator itself uses
	value func(*v1alpha1.KubernetesImagePullerSpec) string
}

// fields maps the spec to the configuration contract, in the spec's order.
var fields = []field{
	{"configMapName", "", func(s *v1alpha1.KubernetesImagePullerSpec) string { return s.ConfigMapName }},
	{"deploymentName", config.KeyDeploymentName, func(s *v1alpha1.KubernetesImagePullerSpec) string { return s.DeploymentName }},
	{"daemonsetName", config.KeyDaemonSetName, func(s *v1alpha1.KubernetesImagePullerSpec) string { return s.DaemonsetName }},
	{"images", config.KeyImages, func(s *v1alpha1.KubernetesImagePullerSpec) string { return s.Images }},
	{"cachingIntervalHours", config.KeyCachingIntervalHours, func(s *v1alpha1.KubernetesImagePullerSpec) string { return s.CachingIntervalHours }},
	{"cachingMemoryRequest", config.KeyMemoryRequest, func(s *v1alpha1.KubernetesImagePullerSpec) string { return s.CachingMemoryRequest }},
	{"cachingMemoryLimit", config.KeyMemoryLimit, func(s *v1alpha1.KubernetesImagePullerSpec) string { return s.CachingMemoryLimit }},
	{"cachingCPURequest", config.KeyCPURequest, func(s *v1alpha1.KubernetesImagePullerSpec) string { return s.CachingCPURequest }},
	{"cachingCPULimit", config.KeyCPULimit, func(s *v1alpha1.KubernetesImagePullerSpec) string { return s.CachingCPULimit }},
	{"nodeSelector", config.KeyNodeSelector, func(s *v1alpha1.KubernetesImagePullerSpec) string { return s.NodeSelector }},
	{"imagePullSecrets", config.KeyImagePullSecrets, func(s *v1alpha1.KubernetesImagePullerSpec) string { return s.ImagePullSecrets }},
	{"affinity", config.KeyAffinity, func(s *v1alpha1.KubernetesImagePullerSpec) string { return s.Affinity }},
	{"tolerations", config.KeyTolerations, func(s *v1alpha1.KubernetesImagePullerSpec) string { return s.Tolerations }},
	{"imagePullerImage", config.KeyKIPImage, func(s *v1alpha1.KubernetesImagePullerSpec) string { return s.ImagePullerImage }},
	{"cachingMode", config.KeyCachingMode, func(s *v1alpha1.KubernetesImagePullerSpec) string { return s.CachingMode }},
	{"pullParallelism", config.KeyPullParallelism, func(s *v1alpha1.KubernetesImagePullerSpec) string { return s.PullParallelism }},
	{"healInterval", config.KeyHealInterval, func(s *v1alpha1.KubernetesImagePullerSpec) string { return s.HealInterval }},
	{"criSocket", config.KeyCRISocket, func(s *v1alpha1.KubernetesImagePullerSpec) string { return s.CRISocket }},
	{"maxNodesPulling", config.KeyMaxNodesPulling, func(s *v1alpha1.KubernetesImagePullerSpec) string { return s.MaxNodesPulling }},
	{"nodeCondition", config.KeyNodeCondition, func(s *v1alpha1.KubernetesImagePullerSpec) string { return s.NodeCondition }},
	{"warmNodeTaint", config.KeyWarmNodeTaint, func(s *v1alpha1.KubernetesImagePullerSpec) string { return s.WarmNodeTaint }},
	{"warmNodeTimeout", config.KeyWarmNodeTimeout, func(s *v1alpha1.KubernetesImagePullerSpec) string { return s.WarmNodeTimeout }},
	{"pinBudget", config.KeyPinBudget, func(s *v1alpha1.KubernetesImagePullerSpec) string { return s.PinBudget }},
	{"imageFsFreeFloor", config.KeyImageFsFreeFloor, func(s *v1alpha1.KubernetesImagePullerSpec) string { return s.ImageFsFreeFloor }},
}

// ConfigMapName is the ConfigMap a resource configures.
func ConfigMapName(spec v1alpha1.KubernetesImagePullerSpec) string {
	if v := strings.TrimSpace(spec.ConfigMapName); v != "" {
		return v
	}
	return config.DefaultConfigMapName
}

// DeploymentName is the puller Deployment a resource runs.
func DeploymentName(spec v1alpha1.KubernetesImagePullerSpec) string {
	if v := strings.TrimSpace(spec.DeploymentName); v != "" {
		return v
	}
	return config.Defaults[config.KeyDeploymentName]
}

// ConfigData is the ConfigMap data for a resource in namespace. Empty spec
// fields are left out, so the contract's documented defaults apply; the
// namespace is always the resource's own.
func ConfigData(spec v1alpha1.KubernetesImagePullerSpec, namespace string) map[string]string {
	data := map[string]string{config.KeyNamespace: namespace}
	for _, f := range fields {
		if v := strings.TrimSpace(f.value(&spec)); v != "" && f.key != "" {
			data[f.key] = v
		}
	}
	return data
}

// Validate checks a spec with the configuration contract's own validation,
// and the ConfigMap name, which only the operator uses. Every problem comes
// back at once, each named by its spec field and key, for example
// "spec.images (IMAGES): value ...: expected ...".
func Validate(spec v1alpha1.KubernetesImagePullerSpec, namespace string) (*config.Config, error) {
	cfg, _, err := config.Parse(ConfigData(spec, namespace))
	var problems []config.Problem
	var cfgErr *config.Error
	switch {
	case errors.As(err, &cfgErr):
		problems = cfgErr.Problems
	case err != nil:
		return nil, err
	}
	if v := strings.TrimSpace(spec.ConfigMapName); v != "" {
		if errs := validation.IsDNS1123Subdomain(v); len(errs) > 0 {
			problems = append(problems, config.Problem{Key: "configMapName", Value: v, Expected: "a ConfigMap name: " + strings.Join(errs, "; ")})
		}
	}
	if cfg != nil {
		// What the API server would refuse for its size is an invalid spec
		// here too, not an apply that fails later.
		if err := daemonset.CheckSize(daemonset.Build(cfg, daemonset.Options{KIPImage: spec.ImagePullerImage})); err != nil {
			problems = append(problems, config.Problem{Key: "images", Value: fmt.Sprintf("%d images", len(cfg.Images)), Expected: err.Error()})
		}
	}
	if len(problems) == 0 {
		for i := range cfg.Skipped {
			cfg.Skipped[i].Key = fieldLabel(cfg.Skipped[i].Key)
		}
		return cfg, nil
	}
	for i := range problems {
		problems[i].Key = fieldLabel(problems[i].Key)
	}
	return nil, &config.Error{Problems: problems}
}

// fieldLabel names a configuration key by the spec field that sets it.
func fieldLabel(key string) string {
	for _, f := range fields {
		switch key {
		case f.key:
			return fmt.Sprintf("spec.%s (%s)", f.name, f.key)
		case f.name:
			return "spec." + f.name
		}
	}
	return key
}
