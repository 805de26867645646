package operator

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"

	"github.com/kip-image-puller/kip/api/v1alpha1"
	"github.com/kip-image-puller/kip/deploy"
	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/daemonset"
	"github.com/kip-image-puller/kip/internal/labels"
	"github.com/kip-image-puller/kip/internal/manifest"
	"github.com/kip-image-puller/kip/internal/privilege"
	"github.com/kip-image-puller/kip/internal/template"
)

// Objects are the namespaced objects that run one puller, in apply order.
type Objects struct {
	ServiceAccount *corev1.ServiceAccount
	// RoleBinding grants the ServiceAccount the deploy.PullerClusterRole
	// in the resource's namespace.
	RoleBinding *rbacv1.RoleBinding
	ConfigMap   *corev1.ConfigMap
	Deployment  *appsv1.Deployment
	// AgentServiceAccount and AgentRoleBinding are agent mode's: the agents
	// report on their own Pods (deploy.AgentClusterRole).
	AgentServiceAccount *corev1.ServiceAccount
	AgentRoleBinding    *rbacv1.RoleBinding
	// NodeBindings are cluster-scoped, outside List: a ClusterRoleBinding
	// of deploy.NodeConditionClusterRole (nodeCondition) and of
	// deploy.WarmNodeTaintClusterRole (warmNodeTaint) to the puller's
	// ServiceAccount, only while the resource asks for them. A namespaced
	// resource cannot own them: LabelNamespace and labels.Instance name it.
	NodeBindings []*rbacv1.ClusterRoleBinding
}

// LabelNamespace on a NodeBinding is its resource's namespace.
const LabelNamespace = "kip.dev/namespace"

// AnnotationNodeAccess on the puller's pod template names the node
// bindings it runs with: a change restarts it, so that it finds the node
// access it now has (or no longer has).
const AnnotationNodeAccess = "kip.dev/node-access"

// List is the objects in apply order: permissions, then configuration, then
// the Deployment that uses both.
func (o Objects) List() []runtime.Object {
	return []runtime.Object{o.ServiceAccount, o.RoleBinding, o.AgentServiceAccount, o.AgentRoleBinding, o.ConfigMap, o.Deployment}
}

// Setting is what the operator's installer and the cluster admin decide
// for one resource, beyond its spec.
type Setting struct {
	// PullerImage runs the puller when the spec names no imagePullerImage,
	// and always in a namespace granted any privilege.
	PullerImage string
	// Grants are the resource's Namespace's (privilege.FromLabels).
	Grants privilege.Grants
	// AllowedSockets are the operator's --cri-socket-allow, passed on to
	// the puller.
	AllowedSockets []string
}

// PullerImage is the image the puller of kip runs under s, and a note when
// the spec's imagePullerImage is set aside: in a namespace granted agent
// mode or node writes, the puller's code runs with that privilege (its
// agents run its image), so a resource writer does not choose it.
func PullerImage(kip *v1alpha1.KubernetesImagePuller, s Setting) (image, setAside string) {
	want := kip.Spec.ImagePullerImage
	switch {
	case want == "" || want == s.PullerImage:
		return s.PullerImage, ""
	case s.Grants.AgentMode || s.Grants.NodeWrites:
		return s.PullerImage, fmt.Sprintf("imagePullerImage: value %q: not used in a namespace granted %s or %s: the puller runs the operator's image %s, which no resource writer chooses",
			want, privilege.LabelAgentMode, privilege.LabelNodeWrites, s.PullerImage)
	}
	return want, ""
}

// Build returns the objects for a resource whose spec is valid. They come
// from the shipped OpenShift templates (deploy/openshift), processed as
// `oc process` would, so a puller installed by the operator and one
// installed by hand are the same. The cluster-scoped node-reading role is
// left out: a resource owns only namespaced objects, and without it the
// puller reports the nodes that run its pods. Node bindings are made only
// for a namespace granted node writes.
func Build(kip *v1alpha1.KubernetesImagePuller, s Setting) (Objects, error) {
	spec := kip.Spec
	image, _ := PullerImage(kip, s)
	name := DeploymentName(spec)
	var objs Objects
	rbac, err := process(deploy.ServiceAccountTemplate, map[string]string{"SERVICEACCOUNT_NAME": name, "NAMESPACE": kip.Namespace})
	if err != nil {
		return objs, err
	}
	app, err := process(deploy.AppTemplate, map[string]string{"DEPLOYMENT_NAME": name, "SERVICEACCOUNT_NAME": name, "CONFIGMAP_NAME": ConfigMapName(spec),
		"CRI_SOCKET_ALLOW": strings.Join(s.AllowedSockets, ",")})
	if err != nil {
		return objs, err
	}
	for _, u := range append(rbac, app...) {
		obj, err := manifest.Typed(&u)
		if err != nil {
			return objs, fmt.Errorf("template object: %w", err)
		}
		agent := u.GetName() == daemonset.AgentServiceAccount
		switch o := obj.(type) {
		case *corev1.ServiceAccount:
			if agent {
				objs.AgentServiceAccount = o
			} else {
				objs.ServiceAccount = o
			}
		case *rbacv1.RoleBinding:
			if agent {
				objs.AgentRoleBinding = o
			} else {
				objs.RoleBinding = o
			}
		case *appsv1.Deployment:
			objs.Deployment = o
		} // the cluster-scoped objects are the installer's
	}
	if objs.ServiceAccount == nil || objs.RoleBinding == nil || objs.Deployment == nil || objs.AgentServiceAccount == nil || objs.AgentRoleBinding == nil {
		return objs, fmt.Errorf("the embedded templates lack a ServiceAccount, RoleBinding or Deployment")
	}
	// The template's Role is left out: the operator binds the ClusterRole it
	// installs instead, and mounts the pull secrets, so that it holds
	// neither Secret read nor any other permission it grants.
	objs.RoleBinding.RoleRef = rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: deploy.PullerClusterRole}
	objs.AgentRoleBinding.RoleRef = rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: deploy.AgentClusterRole}
	cfg, _, err := config.Parse(ConfigData(spec, kip.Namespace))
	if err != nil {
		return objs, err
	}
	mountPullSecrets(objs.Deployment, cfg.ImagePullSecrets)
	objs.ConfigMap = &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: ConfigMapName(spec)},
		Data:       ConfigData(spec, kip.Namespace),
	}
	objs.Deployment.Spec.Template.Spec.Containers[0].Image = image
	if kip.UID != "" {
		c := &objs.Deployment.Spec.Template.Spec.Containers[0]
		c.Args = append(c.Args, "--leader-election-id="+LeaseName(spec, kip.UID))
	}
	if s.Grants.NodeWrites {
		objs.NodeBindings = nodeBindings(kip, objs.ServiceAccount.Name, cfg)
	}
	if len(objs.NodeBindings) > 0 {
		var access []string
		for _, b := range objs.NodeBindings {
			access = append(access, b.RoleRef.Name)
		}
		tmpl := &objs.Deployment.Spec.Template
		if tmpl.Annotations == nil {
			tmpl.Annotations = map[string]string{}
		}
		tmpl.Annotations[AnnotationNodeAccess] = strings.Join(access, ",")
	}
	owner := metav1.OwnerReference{
		APIVersion: v1alpha1.GroupVersion.String(), Kind: "KubernetesImagePuller",
		Name: kip.Name, UID: kip.UID, Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
	}
	for _, obj := range objs.List() {
		meta := obj.(metav1.Object)
		meta.SetNamespace(kip.Namespace)
		meta.SetOwnerReferences([]metav1.OwnerReference{owner})
		l := meta.GetLabels()
		if l == nil {
			l = map[string]string{}
		}
		l[labels.ManagedBy] = labels.ManagedByOperator
		l[labels.Instance] = kip.Name
		meta.SetLabels(l)
	}
	return objs, nil
}

// LeaseName names the leader election Lease of the puller of the resource
// uid: one of its own for each resource, not the template's kip-<configmap>.
// A resource deleted and created again thus starts its puller at once: the
// first puller, losing its permissions with the resource, cannot release
// its Lease, which would hold the new one back until it expired (60 s).
func LeaseName(spec v1alpha1.KubernetesImagePullerSpec, uid types.UID) string {
	id := string(uid)
	if len(id) > 8 {
		id = id[:8]
	}
	return "kip-" + ConfigMapName(spec) + "-" + id
}

// nodeBindings are the ClusterRoleBindings cfg's node settings need.
func nodeBindings(kip *v1alpha1.KubernetesImagePuller, serviceAccount string, cfg *config.Config) []*rbacv1.ClusterRoleBinding {
	var roles []string
	if cfg.NodeCondition {
		roles = append(roles, deploy.NodeConditionClusterRole)
	}
	if cfg.WarmNodeTaint != "" {
		roles = append(roles, deploy.WarmNodeTaintClusterRole)
	}
	var out []*rbacv1.ClusterRoleBinding
	for _, role := range roles {
		out = append(out, &rbacv1.ClusterRoleBinding{
			TypeMeta: metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRoleBinding"},
			ObjectMeta: metav1.ObjectMeta{
				Name: NodeBindingName(kip.Namespace, kip.Name, role),
				Labels: map[string]string{labels.ManagedBy: labels.ManagedByOperator, labels.Instance: kip.Name, LabelNamespace: kip.Namespace,
					labels.Name: daemonset.AppName, labels.PartOf: daemonset.AppName},
			},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: serviceAccount, Namespace: kip.Namespace}},
		})
	}
	return out
}

// NodeBindingName names the ClusterRoleBinding of role for the resource
// name in namespace: ROLE.NAMESPACE.NAME, which no other pair can share
// (a namespace name has no dot); a name too long for an object ends in a
// hash of the whole instead.
func NodeBindingName(namespace, name, role string) string {
	full := role + "." + namespace + "." + name
	if len(full) <= validation.DNS1123SubdomainMaxLength {
		return full
	}
	sum := sha256.Sum256([]byte(full))
	return full[:validation.DNS1123SubdomainMaxLength-17] + "-" + hex.EncodeToString(sum[:8])
}

// mountPullSecrets mounts each named Secret into the puller's pod under
// deploy.PullSecretDir/NAME and tells the controller to read them there.
// Optional: a missing Secret is reported by the puller, by name, and does
// not keep it from starting.
func mountPullSecrets(d *appsv1.Deployment, names []string) {
	if len(names) == 0 {
		return
	}
	pod := &d.Spec.Template.Spec
	c := &pod.Containers[0]
	c.Args = append(c.Args, "--pull-secret-dir="+deploy.PullSecretDir)
	for i, name := range names {
		volume := fmt.Sprintf("pull-secret-%d", i)
		pod.Volumes = append(pod.Volumes, corev1.Volume{Name: volume, VolumeSource: corev1.VolumeSource{
			Secret: &corev1.SecretVolumeSource{SecretName: name, Optional: ptr.To(true)},
		}})
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: volume, ReadOnly: true, MountPath: deploy.PullSecretDir + "/" + name})
	}
}

func process(data []byte, values map[string]string) ([]unstructured.Unstructured, error) {
	t, err := template.Parse(data)
	if err != nil {
		return nil, err
	}
	return t.Process(values)
}

// ForeignError is the refusal to write over an object that the operator
// did not make for this resource.
type ForeignError struct{ Message string }

func (e *ForeignError) Error() string { return e.Message }

// CheckOwn tells whether live, an object of kind named as the operator
// would name kip's, is the operator's: labelled managed-by kip-operator.
// The operator writes only such objects; another (a Deployment of the same
// name, say, which deploymentName may name) is refused, not adopted. One
// the operator made for an earlier resource of the namespace, which the
// garbage collector has not removed yet, is taken over: one resource holds
// a namespace at a time.
func CheckOwn(kip *v1alpha1.KubernetesImagePuller, live metav1.Object, kind string) error {
	l := live.GetLabels()
	if l[labels.ManagedBy] == labels.ManagedByOperator {
		return nil
	}
	return &ForeignError{Message: fmt.Sprintf("%s %s already exists and is not the operator's (label %s=%q, want %s); it is left alone: remove it, or give KubernetesImagePuller %s other names (deploymentName, configMapName)",
		kind, live.GetName(), labels.ManagedBy, l[labels.ManagedBy], labels.ManagedByOperator, kip.Name)}
}
