package operator

import (
	"maps"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"

	"github.com/kip-image-puller/kip/api/v1alpha1"
	"github.com/kip-image-puller/kip/deploy"
	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/labels"
	"github.com/kip-image-puller/kip/internal/privilege"
)

func TestBuild(t *testing.T) {
	kip := &v1alpha1.KubernetesImagePuller{
		ObjectMeta: metav1.ObjectMeta{Name: "puller", Namespace: "tools", UID: "uid-1"},
		Spec:       v1alpha1.KubernetesImagePullerSpec{Images: "a=reg/a:1", DeploymentName: "kip", ConfigMapName: "kip-config"},
	}
	objs, err := Build(kip, Setting{PullerImage: "reg/kip:default"})
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range objs.List() {
		m := obj.(metav1.Object)
		ref := metav1.GetControllerOf(m)
		if m.GetNamespace() != "tools" || ref == nil || ref.UID != "uid-1" || m.GetLabels()["app.kubernetes.io/managed-by"] != labels.ManagedByOperator || m.GetLabels()["app.kubernetes.io/instance"] != "puller" {
			t.Errorf("%T %s: namespace %q, controller %+v, labels %v", obj, m.GetName(), m.GetNamespace(), ref, m.GetLabels())
		}
	}
	if objs.ServiceAccount.Name != "kip" || objs.RoleBinding.Name != "kip" || objs.RoleBinding.Subjects[0].Name != "kip" || objs.Deployment.Name != "kip" {
		t.Errorf("names follow deploymentName: sa %s, binding %s, binding subject %s, deployment %s",
			objs.ServiceAccount.Name, objs.RoleBinding.Name, objs.RoleBinding.Subjects[0].Name, objs.Deployment.Name)
	}
	if ref := objs.RoleBinding.RoleRef; ref.Kind != "ClusterRole" || ref.Name != deploy.PullerClusterRole {
		t.Errorf("the RoleBinding grants %s %s, want the ClusterRole %s the operator may bind", ref.Kind, ref.Name, deploy.PullerClusterRole)
	}
	c := objs.Deployment.Spec.Template.Spec.Containers[0]
	env, err := deploy.CheckControllerContainer(c)
	if err != nil {
		t.Error(err)
	}
	if c.Image != "reg/kip:default" || env["CONFIGMAP_NAME"] != "kip-config" || env["DEPLOYMENT_NAME"] != "kip" || objs.ConfigMap.Name != "kip-config" {
		t.Errorf("container %s, env %v; ConfigMap %s", c.Image, env, objs.ConfigMap.Name)
	}
	if !slices.Contains(c.Args, "--leader-election-id=kip-kip-config-uid-1") {
		t.Errorf("args %v: the puller's Lease is not the resource's own", c.Args)
	}
	if objs.ConfigMap.Data[config.KeyDeploymentName] != "kip" {
		t.Errorf("DEPLOYMENT_NAME %q: the puller must find its own Deployment", objs.ConfigMap.Data[config.KeyDeploymentName])
	}

	kip.Spec.ImagePullerImage = "reg/kip@sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	objs, err = Build(kip, Setting{PullerImage: "reg/kip:default"})
	if err != nil {
		t.Fatal(err)
	}
	if got := objs.Deployment.Spec.Template.Spec.Containers[0].Image; got != kip.Spec.ImagePullerImage || objs.ConfigMap.Data[config.KeyKIPImage] != got {
		t.Errorf("imagePullerImage: Deployment image %s, KIP_IMAGE %s", got, objs.ConfigMap.Data[config.KeyKIPImage])
	}

	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	pod := objs.Deployment.Spec.Template
	for _, r := range evaluator.EvaluatePod(psapi.LevelVersion{Level: psapi.LevelRestricted, Version: psapi.LatestVersion()}, &pod.ObjectMeta, &pod.Spec) {
		if !r.Allowed {
			t.Errorf("restricted policy: %s: %s", r.ForbiddenReason, r.ForbiddenDetail)
		}
	}
}

func TestLeaseNameIsTheResources(t *testing.T) {
	spec := v1alpha1.KubernetesImagePullerSpec{}
	tests := []struct {
		uid  types.UID
		want string
	}{
		{"0f8fad5b-d9cb-469f-a165-70867728950e", "kip-k8s-image-puller-0f8fad5b"},
		{"short", "kip-k8s-image-puller-short"},
	}
	for _, tt := range tests {
		if got := LeaseName(spec, tt.uid); got != tt.want {
			t.Errorf("LeaseName(%s) = %s, want %s", tt.uid, got, tt.want)
		}
	}
}

// TestBuildMountsThePullSecrets: the puller reads the pull secrets a
// resource names from mounts, so it needs no Secret permission.
func TestBuildMountsThePullSecrets(t *testing.T) {
	kip := &v1alpha1.KubernetesImagePuller{
		ObjectMeta: metav1.ObjectMeta{Name: "puller", Namespace: "tools"},
		Spec:       v1alpha1.KubernetesImagePullerSpec{Images: "a=reg/a:1", ImagePullSecrets: "one; two"},
	}
	objs, err := Build(kip, Setting{PullerImage: "reg/kip:default"})
	if err != nil {
		t.Fatal(err)
	}
	pod := objs.Deployment.Spec.Template.Spec
	c := pod.Containers[0]
	if !slices.Contains(c.Args, "--pull-secret-dir="+deploy.PullSecretDir) {
		t.Errorf("args %v: the controller is not told where the secrets are", c.Args)
	}
	mounted := map[string]string{}
	for _, v := range pod.Volumes {
		if v.Secret == nil || v.Secret.Optional == nil || !*v.Secret.Optional {
			t.Errorf("volume %s: %+v, want an optional Secret volume", v.Name, v.VolumeSource)
			continue
		}
		for _, m := range c.VolumeMounts {
			if m.Name == v.Name && m.ReadOnly {
				mounted[v.Secret.SecretName] = m.MountPath
			}
		}
	}
	want := map[string]string{"one": deploy.PullSecretDir + "/one", "two": deploy.PullSecretDir + "/two"}
	if !maps.Equal(mounted, want) {
		t.Errorf("mounted %v, want %v", mounted, want)
	}

	kip.Spec.ImagePullSecrets = ""
	if objs, err = Build(kip, Setting{PullerImage: "reg/kip:default"}); err != nil || len(objs.Deployment.Spec.Template.Spec.Volumes) != 0 {
		t.Errorf("without pull secrets: volumes %v, %v", objs.Deployment.Spec.Template.Spec.Volumes, err)
	}
}

// TestBuildBindsNodeAccessOnlyWhenAsked: nodeCondition binds the node
// condition's ClusterRole to the puller, cluster-wide, and warmNodeTaint
// the taint's; without them there is no binding and no annotation, and the
// pod template's annotation names what is bound, so that a change restarts
// the puller.
func TestBuildBindsNodeAccessOnlyWhenAsked(t *testing.T) {
	for _, tc := range []struct {
		name      string
		condition string
		taint     string
		want      []string
		granted   bool
	}{
		{"neither", "", "", nil, true},
		{"the condition", "true", "", []string{deploy.NodeConditionClusterRole}, true},
		{"the condition and the taint", "true", "kip.dev/warming", []string{deploy.NodeConditionClusterRole, deploy.WarmNodeTaintClusterRole}, true},
		{"the condition and the taint, not granted", "true", "kip.dev/warming", nil, false},
	} {
		kip := &v1alpha1.KubernetesImagePuller{
			ObjectMeta: metav1.ObjectMeta{Name: "puller", Namespace: "tools", UID: "uid-1"},
			Spec:       v1alpha1.KubernetesImagePullerSpec{Images: "a=reg/a:1", DeploymentName: "kip", NodeCondition: tc.condition, WarmNodeTaint: tc.taint},
		}
		objs, err := Build(kip, Setting{PullerImage: "reg/kip:default", Grants: privilege.Grants{NodeWrites: tc.granted}})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var got []string
		for _, b := range objs.NodeBindings {
			got = append(got, b.RoleRef.Name)
			s := b.Subjects
			if len(s) != 1 || s[0].Kind != "ServiceAccount" || s[0].Name != "kip" || s[0].Namespace != "tools" || b.Namespace != "" || len(b.OwnerReferences) != 0 ||
				b.Name != NodeBindingName("tools", "puller", b.RoleRef.Name) || b.Labels[LabelNamespace] != "tools" || b.Labels[labels.Instance] != "puller" ||
				b.Labels[labels.ManagedBy] != labels.ManagedByOperator {
				t.Errorf("%s: binding %+v", tc.name, b)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: binds %v, want %v", tc.name, got, tc.want)
		}
		access, annotated := objs.Deployment.Spec.Template.Annotations[AnnotationNodeAccess]
		if annotated != (len(tc.want) > 0) || (annotated && access != strings.Join(tc.want, ",")) {
			t.Errorf("%s: %s=%q", tc.name, AnnotationNodeAccess, access)
		}
	}
}

// TestNodeBindingNamesNeverCollide: namespace a-b with resource c and
// namespace a with resource b-c once shared a binding.
func TestNodeBindingNamesNeverCollide(t *testing.T) {
	role := deploy.NodeConditionClusterRole
	if NodeBindingName("a-b", "c", role) == NodeBindingName("a", "b-c", role) {
		t.Errorf("a-b/c and a/b-c share %s", NodeBindingName("a", "b-c", role))
	}
	long := strings.Repeat("n", 253)
	got := NodeBindingName("ns", long, role)
	if len(got) > 253 || got == NodeBindingName("ns", long[:252]+"m", role) {
		t.Errorf("a long name: %q (%d characters)", got, len(got))
	}
}

// TestPullerImage: imagePullerImage chooses the puller's image only where
// its namespace holds no grant.
func TestPullerImage(t *testing.T) {
	tests := []struct {
		spec     string
		grants   privilege.Grants
		want     string
		setAside bool
	}{
		{"", privilege.Grants{}, "reg/kip:default", false},
		{"reg/other:1", privilege.Grants{}, "reg/other:1", false},
		{"reg/other:1", privilege.Grants{AgentMode: true}, "reg/kip:default", true},
		{"reg/other:1", privilege.Grants{NodeWrites: true}, "reg/kip:default", true},
		{"reg/kip:default", privilege.Grants{AgentMode: true}, "reg/kip:default", false},
	}
	for _, tt := range tests {
		kip := &v1alpha1.KubernetesImagePuller{Spec: v1alpha1.KubernetesImagePullerSpec{ImagePullerImage: tt.spec}}
		got, note := PullerImage(kip, Setting{PullerImage: "reg/kip:default", Grants: tt.grants})
		if got != tt.want || (note != "") != tt.setAside || (note != "" && !strings.Contains(note, "imagePullerImage")) {
			t.Errorf("PullerImage(%q, %+v) = %q, %q; want %q", tt.spec, tt.grants, got, note, tt.want)
		}
	}
}

// TestCheckOwn: the operator writes over its own objects only.
func TestCheckOwn(t *testing.T) {
	kip := &v1alpha1.KubernetesImagePuller{ObjectMeta: metav1.ObjectMeta{Name: "puller"}}
	tests := []struct {
		labels map[string]string
		own    bool
	}{
		{map[string]string{labels.ManagedBy: labels.ManagedByOperator, labels.Instance: "puller"}, true},
		{map[string]string{labels.ManagedBy: labels.ManagedByOperator, labels.Instance: "earlier"}, true},
		{map[string]string{labels.ManagedBy: "helm"}, false},
		{nil, false},
	}
	for _, tt := range tests {
		err := CheckOwn(kip, &metav1.ObjectMeta{Name: "web", Labels: tt.labels}, "Deployment")
		if (err == nil) != tt.own || (err != nil && !strings.Contains(err.Error(), "Deployment web already exists and is not the operator's")) {
			t.Errorf("labels %v: %v, want own %v", tt.labels, err, tt.own)
		}
	}
}
