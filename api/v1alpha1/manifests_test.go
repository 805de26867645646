package v1alpha1

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

const (
	controllerGen = "sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0"
	crdFile       = "../../deploy/operator/crd/che.eclipse.org_kubernetesimagepullers.yaml"
)

// TestManifestsUpToDate regenerates the CRD and the deepcopy code with
// controller-gen and fails when the checked-in files differ: run `make manifests`.
func TestManifestsUpToDate(t *testing.T) {
	out := t.TempDir()
	cmd := exec.Command("go", "run", controllerGen,
		"object", "crd", "paths=./...",
		"output:object:dir="+out, "output:crd:dir="+out)
	cmd.Env = append(os.Environ(), "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("controller-gen: %v\n%s", err, b)
	}
	for generated, checkedIn := range map[string]string{
		"zz_generated.deepcopy.go":                    "zz_generated.deepcopy.go",
		"che.eclipse.org_kubernetesimagepullers.yaml": crdFile,
	} {
		want, err := os.ReadFile(filepath.Join(out, generated))
		if err != nil {
			t.Fatal(err)
		}
		have, err := os.ReadFile(checkedIn)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(want, have) {
			t.Errorf("%s is stale: run make manifests", checkedIn)
		}
	}
}

// TestExistingResourcesApplyUnchanged checks the documented example of the
// existing operator: every spec field decodes strictly, and the CRD declares
// it, with the same name, as a string.
func TestExistingResourcesApplyUnchanged(t *testing.T) {
	example := `apiVersion: che.eclipse.org/v1alpha1
kind: KubernetesImagePuller
metadata:
  name: image-puller
spec:
  configMapName: k8s-image-puller
  deploymentName: kubernetes-image-puller
  daemonsetName: kubernetes-image-puller
  images: "NAME-1=IMAGE-1;NAME-2=IMAGE-2"
  cachingIntervalHours: "1"
  cachingMemoryRequest: "10Mi"
  cachingMemoryLimit: "20Mi"
  cachingCPURequest: ".05"
  cachingCPULimit: ".2"
  nodeSelector: "{}"
  imagePullSecrets: ""
  affinity: "{}"
  tolerations: "[]"
  imagePullerImage: "quay.io/eclipse/kubernetes-image-puller:next"
`
	var kip KubernetesImagePuller
	if err := yaml.UnmarshalStrict([]byte(example), &kip); err != nil {
		t.Fatalf("the example does not decode strictly: %v", err)
	}
	if kip.Spec.CachingCPURequest != ".05" || kip.Spec.ImagePullerImage == "" {
		t.Errorf("spec %+v", kip.Spec)
	}
	data, err := os.ReadFile(crdFile)
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(data, &crd); err != nil {
		t.Fatal(err)
	}
	if crd.Spec.Names.Plural != "kubernetesimagepullers" || crd.Spec.Scope != apiextensionsv1.NamespaceScoped ||
		crd.Spec.Versions[0].Subresources == nil || crd.Spec.Versions[0].Subresources.Status == nil {
		t.Errorf("CRD names/scope/subresources: %+v", crd.Spec)
	}
	spec := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
	var fields map[string]any
	_ = yaml.Unmarshal([]byte(example), &fields)
	for name := range fields["spec"].(map[string]any) {
		prop, ok := spec.Properties[name]
		if !ok || prop.Type != "string" {
			t.Errorf("the CRD's spec.%s: %+v, want a string", name, prop)
		}
	}
	if len(spec.Required) != 0 {
		t.Errorf("required spec fields %v: the existing operator requires none", spec.Required)
	}
}
