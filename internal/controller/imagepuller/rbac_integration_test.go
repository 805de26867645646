//go:build integration

package imagepuller_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/kip-image-puller/kip/api/v1alpha1"
	"github.com/kip-image-puller/kip/deploy"
	"github.com/kip-image-puller/kip/internal/daemonset"
	"github.com/kip-image-puller/kip/internal/dev/testenv"
	"github.com/kip-image-puller/kip/internal/labels"
	"github.com/kip-image-puller/kip/internal/manager"
	"github.com/kip-image-puller/kip/internal/operator"
	"github.com/kip-image-puller/kip/internal/privilege"
)

// operatorIdentity is a client configuration that acts as a ServiceAccount
// of ns holding exactly the ClusterRole of deploy/operator (under a name
// of the test's own), with the ClusterRoles it binds installed under their
// fixed names: the API server's RBAC authorizer and its escalation check
// decide what the operator may do.
func operatorIdentity(t *testing.T, ns string) *rest.Config {
	t.Helper()
	ctx := context.Background()
	for file, name := range map[string]string{"role.yaml": ns + "-kip-operator", "puller_role.yaml": "", "agent_role.yaml": "", "node_roles.yaml": ""} {
		data, err := os.ReadFile(testenv.RepoFile(filepath.Join("deploy", "operator", "rbac", file)))
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range strings.Split(string(data), "\n---\n") {
			var role rbacv1.ClusterRole
			if err := yaml.UnmarshalStrict([]byte(doc), &role); err != nil {
				t.Fatal(err)
			}
			if name != "" {
				role.Name = name
			}
			if err := env.Client.Create(ctx, &role); err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatal(err)
			}
		}
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "kip-operator", Namespace: ns}}
	env.Create(t, sa)
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: ns + "-kip-operator"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: ns + "-kip-operator"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa.Name, Namespace: ns}},
	}
	env.Create(t, binding)
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), binding) })
	asOperator := rest.CopyConfig(env.Config)
	asOperator.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + ns + ":kip-operator"}
	return asOperator
}

// TestNodeBindingsFollowTheResource: nodeCondition and warmNodeTaint bind
// their ClusterRoles to the puller, cluster-wide, as the operator's own
// RBAC allows (bind on those roles only); clearing a field removes its
// binding, and deleting the resource removes the rest, which no owner
// reference can take with it.
func TestNodeBindingsFollowTheResource(t *testing.T) {
	ctx := context.Background()
	ns := env.Namespace(t)
	// A cluster admin granted the namespace node writes.
	grant := fmt.Sprintf(`{"metadata":{"labels":{%q:%q}}}`, privilege.LabelNodeWrites, privilege.Allowed)
	if err := env.Client.Patch(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, client.RawPatch(types.MergePatchType, []byte(grant))); err != nil {
		t.Fatal(err)
	}
	testenv.StartOperator(t, operatorIdentity(t, ns), manager.Options{Namespaces: []string{ns}}, 0)
	kip := newPuller(ns, "image-puller", v1alpha1.KubernetesImagePullerSpec{Images: "a=reg.example.com/a:1", NodeCondition: "true", WarmNodeTaint: "kip.dev/warming"})
	env.Create(t, kip)
	bindings := func(want ...string) {
		t.Helper()
		testenv.Eventually(t, 20*time.Second, fmt.Sprintf("node bindings %v", want), func() (bool, string) {
			var list rbacv1.ClusterRoleBindingList
			if err := env.Client.List(ctx, &list, client.MatchingLabels{operator.LabelNamespace: ns}); err != nil {
				return false, err.Error()
			}
			var got []string
			for _, b := range list.Items {
				if b.Subjects[0].Name != "kubernetes-image-puller" || b.Subjects[0].Namespace != ns || b.Name != operator.NodeBindingName(ns, kip.Name, b.RoleRef.Name) {
					return false, fmt.Sprintf("binding %+v", b)
				}
				got = append(got, b.RoleRef.Name)
			}
			return slices.Equal(got, want), fmt.Sprint(got)
		})
	}
	bindings(deploy.NodeConditionClusterRole, deploy.WarmNodeTaintClusterRole)
	var dep appsv1.Deployment
	owned(t, kip, "kubernetes-image-puller", &dep)
	if got := dep.Spec.Template.Annotations[operator.AnnotationNodeAccess]; got != deploy.NodeConditionClusterRole+","+deploy.WarmNodeTaintClusterRole {
		t.Errorf("the puller's pod template says %s=%q", operator.AnnotationNodeAccess, got)
	}

	editSpec(t, kip, func(s *v1alpha1.KubernetesImagePullerSpec) { s.WarmNodeTaint = "" })
	bindings(deploy.NodeConditionClusterRole)

	if err := env.Client.Delete(ctx, kip); err != nil {
		t.Fatal(err)
	}
	bindings()
}

// TestOperatorRBACIsEnough runs the operator as a ServiceAccount that holds
// exactly the ClusterRole of deploy/operator, so the API server's RBAC
// authorizer and its escalation check decide: the operator must install a
// puller, RoleBinding included, without holding what it grants.
func TestOperatorRBACIsEnough(t *testing.T) {
	ns := env.Namespace(t)
	testenv.StartOperator(t, operatorIdentity(t, ns), manager.Options{Namespaces: []string{ns}}, 0)
	kip := newPuller(ns, "image-puller", v1alpha1.KubernetesImagePullerSpec{Images: "a=reg.example.com/a:1", ImagePullSecrets: "regcred"})
	env.Create(t, kip)

	var rb rbacv1.RoleBinding
	owned(t, kip, "kubernetes-image-puller", &rb)
	if rb.RoleRef.Name != deploy.PullerClusterRole {
		t.Errorf("RoleBinding to %s %s", rb.RoleRef.Kind, rb.RoleRef.Name)
	}
	owned(t, kip, "kubernetes-image-puller", &corev1.ServiceAccount{})
	var agentRB rbacv1.RoleBinding
	owned(t, kip, daemonset.AgentServiceAccount, &agentRB)
	if agentRB.RoleRef.Name != deploy.AgentClusterRole {
		t.Errorf("the agents' RoleBinding grants %s %s", agentRB.RoleRef.Kind, agentRB.RoleRef.Name)
	}
	owned(t, kip, "kubernetes-image-puller", &appsv1.Deployment{})
}

// TestUpgradeReplacesTheRoleOfEarlierVersions: earlier versions made a Role
// and bound it; a roleRef cannot change, so the operator replaces that
// RoleBinding with one to the puller ClusterRole and removes the Role.
func TestUpgradeReplacesTheRoleOfEarlierVersions(t *testing.T) {
	ctx := context.Background()
	ns := env.Namespace(t)
	kip := newPuller(ns, "image-puller", v1alpha1.KubernetesImagePullerSpec{Images: "a=reg.example.com/a:1"})
	env.Create(t, kip)
	ours := func(name string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: ns,
			Labels: map[string]string{labels.ManagedBy: labels.ManagedByOperator, labels.Instance: kip.Name},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: v1alpha1.GroupVersion.String(), Kind: "KubernetesImagePuller",
				Name: kip.Name, UID: kip.UID, Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}}}
	}
	oldRole := &rbacv1.Role{ObjectMeta: ours("kubernetes-image-puller"),
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}}}}
	env.Create(t, oldRole)
	env.Create(t, &rbacv1.RoleBinding{ObjectMeta: ours("kubernetes-image-puller"),
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: oldRole.Name},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "kubernetes-image-puller", Namespace: ns}}})

	testenv.StartOperator(t, env.Config, manager.Options{Namespaces: []string{ns}}, 0)
	testenv.Eventually(t, 20*time.Second, "the RoleBinding to the puller ClusterRole, the old Role gone", func() (bool, string) {
		var rb rbacv1.RoleBinding
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(oldRole), &rb); err != nil {
			return false, err.Error()
		}
		err := env.Client.Get(ctx, client.ObjectKeyFromObject(oldRole), &rbacv1.Role{})
		return rb.RoleRef.Kind == "ClusterRole" && rb.RoleRef.Name == deploy.PullerClusterRole && apierrors.IsNotFound(err),
			fmt.Sprintf("RoleBinding to %s %s; Role: %v", rb.RoleRef.Kind, rb.RoleRef.Name, err)
	})
}
