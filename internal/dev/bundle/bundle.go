// Package bundle makes the operator's OLM bundle (deploy/operator/bundle)
// from its kustomize manifests (deploy/operator), so that OperatorHub and
// `kubectl apply -k` install the same operator: the same Deployment, the
// same RBAC, the same CRD. `make bundle` writes it; a test fails when the
// checked-in bundle is stale and validates it with operator-framework/api.
package bundle

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/blang/semver/v4"
	opversion "github.com/operator-framework/api/pkg/lib/version"
	olm "github.com/operator-framework/api/pkg/operators/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/kip-image-puller/kip/api/v1alpha1"
	"github.com/kip-image-puller/kip/deploy"
	"github.com/kip-image-puller/kip/internal/manifest"
	"github.com/kip-image-puller/kip/internal/ssa"
)

// Package, channel and version of the bundle.
const (
	PackageName = "kubernetes-image-puller-kip"
	Channel     = "stable"
	Version     = "0.1.0"
)

// Render builds a kustomization directory into its objects, as
// `kubectl kustomize` does.
func Render(dir string) ([]unstructured.Unstructured, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resMap, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize %s: %w", dir, err)
	}
	var objs []unstructured.Unstructured
	for _, r := range resMap.Resources() {
		m, err := r.Map()
		if err != nil {
			return nil, err
		}
		objs = append(objs, unstructured.Unstructured{Object: m})
	}
	return objs, nil
}

// Files are the bundle's files by path inside the bundle directory.
type Files map[string][]byte

// Make builds the bundle of the given version from the rendered manifests.
func Make(objs []unstructured.Unstructured, version string) (Files, error) {
	v, err := semver.Parse(version)
	if err != nil {
		return nil, fmt.Errorf("bundle version %q: %w", version, err)
	}
	var (
		dep          *appsv1.Deployment
		clusterRoles = map[string]*unstructured.Unstructured{}
		bindings     []*rbacv1.ClusterRoleBinding
		role         *rbacv1.Role
		sa           *corev1.ServiceAccount
		crd          *unstructured.Unstructured
	)
	for i := range objs {
		u := &objs[i]
		if u.GetKind() == "CustomResourceDefinition" {
			crd = u
			continue
		}
		obj, err := manifest.Typed(u)
		if err != nil {
			return nil, err
		}
		switch o := obj.(type) {
		case *appsv1.Deployment:
			dep = o
		case *rbacv1.ClusterRole:
			clusterRoles[o.Name] = u
		case *rbacv1.ClusterRoleBinding:
			bindings = append(bindings, o)
		case *rbacv1.Role:
			role = o
		case *corev1.ServiceAccount:
			sa = o
		} // the namespace and the namespaced binding: OLM makes its own
	}
	if dep == nil || role == nil || sa == nil || crd == nil || clusterRoles[deploy.PullerClusterRole] == nil {
		return nil, fmt.Errorf("the manifests lack the operator Deployment, its Role, ServiceAccount, the CRD or the puller's ClusterRole")
	}
	// The ClusterRoles bound to the operator become the CSV's
	// clusterPermissions (OLM binds them); the others ship as they are.
	clusterRules, bound, err := boundRules(clusterRoles, bindings, sa.Name)
	if err != nil {
		return nil, err
	}
	// Under OLM, the namespaces to watch come from the OperatorGroup.
	for i := range dep.Spec.Template.Spec.Containers[0].Env {
		e := &dep.Spec.Template.Spec.Containers[0].Env[i]
		if e.Name == "WATCH_NAMESPACE" {
			e.Value = ""
			e.ValueFrom = &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.annotations['olm.targetNamespaces']"}}
		}
	}
	image := dep.Spec.Template.Spec.Containers[0].Image
	example, err := json.Marshal([]map[string]any{{
		"apiVersion": v1alpha1.GroupVersion.String(),
		"kind":       "KubernetesImagePuller",
		"metadata":   map[string]any{"name": "image-puller"},
		"spec":       map[string]any{"images": "java=quay.io/eclipse/che-java11-maven:next;node=quay.io/eclipse/che-nodejs10-ubi:next"},
	}})
	if err != nil {
		return nil, err
	}
	csv := olm.ClusterServiceVersion{
		TypeMeta: metav1.TypeMeta{APIVersion: olm.SchemeGroupVersion.String(), Kind: olm.ClusterServiceVersionKind},
		ObjectMeta: metav1.ObjectMeta{
			Name: PackageName + ".v" + v.String(),
			Annotations: map[string]string{
				"alm-examples":   string(example),
				"capabilities":   "Basic Install",
				"categories":     "Developer Tools",
				"containerImage": image,
				"description":    "Keeps a list of images cached on every selected node, so workspaces start fast.",
				"repository":     "https://github.com/kip-image-puller/kip",
				"support":        "kip-image-puller",
			},
		},
		Spec: olm.ClusterServiceVersionSpec{
			DisplayName:    "Kubernetes Image Puller (kip)",
			Description:    description,
			Keywords:       []string{"image", "cache", "pre-pull", "workspaces", "che", "devspaces"},
			Maintainers:    []olm.Maintainer{{Name: "kip maintainers", Email: "kip-image-puller@users.noreply.github.com"}},
			Provider:       olm.AppLink{Name: "kip-image-puller", URL: "https://github.com/kip-image-puller/kip"},
			Links:          []olm.AppLink{{Name: "Source", URL: "https://github.com/kip-image-puller/kip"}},
			Maturity:       Channel,
			Version:        opversion.OperatorVersion{Version: v},
			MinKubeVersion: "1.28.0",
			InstallModes: []olm.InstallMode{
				{Type: olm.InstallModeTypeOwnNamespace, Supported: true},
				{Type: olm.InstallModeTypeSingleNamespace, Supported: true},
				{Type: olm.InstallModeTypeMultiNamespace, Supported: true},
				{Type: olm.InstallModeTypeAllNamespaces, Supported: true},
			},
			CustomResourceDefinitions: olm.CustomResourceDefinitions{Owned: []olm.CRDDescription{{
				Name: crd.GetName(), Version: v1alpha1.GroupVersion.Version, Kind: "KubernetesImagePuller",
				DisplayName: "Kubernetes Image Puller",
				Description: "A list of images kept cached on every selected node",
				StatusDescriptors: []olm.StatusDescriptor{
					{Path: "conditions", DisplayName: "Conditions", XDescriptors: []string{"urn:alm:descriptor:io.kubernetes.conditions"}},
					{Path: "imagesCached", DisplayName: "Images cached"},
					{Path: "nodesWarm", DisplayName: "Nodes warm"},
					{Path: "imagePullerImage", DisplayName: "Puller image"},
				},
			}}},
			InstallStrategy: olm.NamedInstallStrategy{
				StrategyName: olm.InstallStrategyNameDeployment,
				StrategySpec: olm.StrategyDetailsDeployment{
					DeploymentSpecs:    []olm.StrategyDeploymentSpec{{Name: dep.Name, Label: dep.Labels, Spec: dep.Spec}},
					ClusterPermissions: []olm.StrategyDeploymentPermissions{{ServiceAccountName: sa.Name, Rules: clusterRules}},
					Permissions:        []olm.StrategyDeploymentPermissions{{ServiceAccountName: sa.Name, Rules: role.Rules}},
				},
			},
		},
	}
	csvYAML, err := marshal(&csv)
	if err != nil {
		return nil, err
	}
	crdYAML, err := marshal(crd.Object)
	if err != nil {
		return nil, err
	}

	annotations, err := marshal(map[string]any{"annotations": map[string]string{
		"operators.operatorframework.io.bundle.mediatype.v1":       "registry+v1",
		"operators.operatorframework.io.bundle.manifests.v1":       "manifests/",
		"operators.operatorframework.io.bundle.metadata.v1":        "metadata/",
		"operators.operatorframework.io.bundle.package.v1":         PackageName,
		"operators.operatorframework.io.bundle.channels.v1":        Channel,
		"operators.operatorframework.io.bundle.channel.default.v1": Channel,
	}})
	if err != nil {
		return nil, err
	}
	files := Files{
		"manifests/" + PackageName + ".clusterserviceversion.yaml": csvYAML,
		"manifests/" + crd.GetName() + ".yaml":                     crdYAML,
		"metadata/annotations.yaml":                                annotations,
	}
	for name, u := range clusterRoles {
		if bound[name] {
			continue
		}
		out, err := marshal(u.Object)
		if err != nil {
			return nil, err
		}
		files["manifests/"+name+".clusterrole.yaml"] = out
	}
	return files, nil
}

// boundRules returns the rules of the ClusterRoles that bindings grant to
// the ServiceAccount sa, in binding order, and the names of those roles.
func boundRules(roles map[string]*unstructured.Unstructured, bindings []*rbacv1.ClusterRoleBinding, sa string) ([]rbacv1.PolicyRule, map[string]bool, error) {
	var rules []rbacv1.PolicyRule
	bound := map[string]bool{}
	for _, b := range bindings {
		if !slices.ContainsFunc(b.Subjects, func(s rbacv1.Subject) bool { return s.Kind == "ServiceAccount" && s.Name == sa }) {
			continue
		}
		u, ok := roles[b.RoleRef.Name]
		if !ok {
			return nil, nil, fmt.Errorf("ClusterRoleBinding %s: no ClusterRole %s in the manifests", b.Name, b.RoleRef.Name)
		}
		var cr rbacv1.ClusterRole
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &cr); err != nil {
			return nil, nil, err
		}
		rules = append(rules, cr.Rules...)
		bound[cr.Name] = true
	}
	if len(rules) == 0 {
		return nil, nil, fmt.Errorf("no ClusterRole is bound to the operator's ServiceAccount %s", sa)
	}
	return rules, bound, nil
}

const header = "# Generated by `make bundle` from deploy/operator; do not edit.\n"

func marshal(v any) ([]byte, error) {
	raw, err := ssa.JSON(v)
	if err != nil {
		return nil, err
	}
	out, err := yaml.JSONToYAML(raw)
	if err != nil {
		return nil, err
	}
	return append([]byte(header), out...), nil
}

const description = `The Kubernetes image puller keeps a chosen list of images cached on every
selected node, so that workspaces (Eclipse Che, OpenShift Dev Spaces) start in
about a second instead of pulling for minutes.

Create a KubernetesImagePuller in a namespace, or set
spec.components.imagePuller.enable on a CheCluster. The operator runs the
puller there, and the resource's status tells the truth: Ready only when every
image is cached on every selected node, with the images that fail named by
node and reason.

Compared with the puller it replaces: configuration reloads live and never
crash-loops, pods roll only when a tag's digest moves, and the
one-per-namespace rule needs no webhook.`
