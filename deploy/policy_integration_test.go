//go:build integration

package deploy_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kip-image-puller/kip/deploy"
	"github.com/kip-image-puller/kip/internal/dev/poll"
	"github.com/kip-image-puller/kip/internal/template"
)

// applyPolicies creates the shipped admission policies, cluster-scoped and
// removed when the test ends, and waits until the API server enforces
// them (it loads a new policy within a second or so).
func applyPolicies(t *testing.T) {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(deploy.Policies), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if len(u.Object) == 0 {
			continue
		}
		if err := env.Client.Create(t.Context(), u); err != nil {
			t.Fatalf("the shipped %s %s is refused: %v", u.GetKind(), u.GetName(), err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), u) })
	}
}

// impersonate returns a client that acts as user, with the groups and the
// extra fields (a bound token's pod and node) an authenticator would give.
func impersonate(t *testing.T, user string, groups []string, extra map[string][]string) client.Client {
	t.Helper()
	rc := rest.CopyConfig(env.Config)
	rc.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: append(groups, "system:authenticated"), Extra: extra}
	c, err := client.New(rc, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// agentClient acts as the kip-agent ServiceAccount of ns with the token
// bound to pod on node; pod "" is a token bound to nothing
// (`kubectl create token kip-agent`).
func agentClient(t *testing.T, ns, pod, node string) client.Client {
	extra := map[string][]string{}
	if pod != "" {
		extra["authentication.kubernetes.io/pod-name"] = []string{pod}
		extra["authentication.kubernetes.io/node-name"] = []string{node}
	}
	return impersonate(t, "system:serviceaccount:"+ns+":kip-agent", []string{"system:serviceaccounts", "system:serviceaccounts:" + ns}, extra)
}

// installRBAC applies the namespaced objects of the shipped serviceaccount
// template in ns: the puller's and the agents' ServiceAccounts, Roles and
// RoleBindings.
func installRBAC(t *testing.T, ns string) {
	t.Helper()
	tmpl, err := template.Parse(deploy.ServiceAccountTemplate)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := tmpl.Process(map[string]string{"NAMESPACE": ns})
	if err != nil {
		t.Fatal(err)
	}
	for i := range objs {
		u := &objs[i]
		if strings.HasPrefix(u.GetKind(), "Cluster") {
			continue
		}
		u.SetNamespace(ns)
		if err := env.Client.Create(t.Context(), u); err != nil {
			t.Fatal(err)
		}
	}
}

func pod(ns, name, node, image string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app.kubernetes.io/name": "kubernetes-image-puller"}},
		Spec:       corev1.PodSpec{NodeName: node, ServiceAccountName: "kip-agent", Containers: []corev1.Container{{Name: "kip-agent", Image: image}}},
	}
}

// denied checks that err is the API server's refusal, and that its message
// says want.
func denied(t *testing.T, what string, err error, want string) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("%s: allowed, want denied", what)
	case !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err):
		t.Errorf("%s: %v, want Forbidden", what, err)
	case !strings.Contains(err.Error(), want):
		t.Errorf("%s: denied with %q, want it to say %q", what, err, want)
	}
}

// TestAgentTokenWritesOnlyItsOwnReport attacks with an agent's own token,
// as a compromised agent would, and checks the API server's answer to
// each write: its own report and its own pull slot are allowed; another
// agent's Pod, the controller's Pod, another node's report, its own Pod's
// image or labels, the leader Lease and a slot another agent holds are
// denied.
func TestAgentTokenWritesOnlyItsOwnReport(t *testing.T) {
	applyPolicies(t)
	ns := env.Namespace(t)
	installRBAC(t, ns)
	ctx := t.Context()
	for _, p := range []*corev1.Pod{pod(ns, "agent-a", "node1", "kip@sha256:1"), pod(ns, "agent-b", "node2", "kip@sha256:1"), pod(ns, "controller", "node1", "kip:1")} {
		if err := env.Client.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	now := metav1.NewMicroTime(time.Now())
	for _, l := range []*coordinationv1.Lease{
		{ObjectMeta: metav1.ObjectMeta{Name: "kip-k8s-image-puller", Namespace: ns}, Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("controller"), LeaseDurationSeconds: ptr.To[int32](60), RenewTime: &now}},
		{ObjectMeta: metav1.ObjectMeta{Name: "cache-agent-pull-slot-1", Namespace: ns}, Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("agent-b"), LeaseDurationSeconds: ptr.To[int32](30), RenewTime: &now, AcquireTime: &now}},
	} {
		if err := env.Client.Create(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	a := agentClient(t, ns, "agent-a", "node1")
	annotate := func(c client.Client, name, value string) error {
		patch := fmt.Sprintf(`{"metadata":{"annotations":{"kip.dev/agent-report":%q}}}`, value)
		return c.Patch(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}, client.RawPatch(types.MergePatchType, []byte(patch)))
	}
	patchPod := func(c client.Client, name, patch string) error {
		return c.Patch(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}, client.RawPatch(types.StrategicMergePatchType, []byte(patch)))
	}

	// The policy loads asynchronously: wait until it denies the first attack.
	poll.Until(t, 30*time.Second, 200*time.Millisecond, "the policy kip-agent-token to be enforced", func() (bool, string) {
		err := annotate(a, "agent-b", `{"node":"node2","forged":true}`)
		return err != nil && strings.Contains(err.Error(), "kip-agent-token"), fmt.Sprint(err)
	})

	if err := annotate(a, "agent-a", `{"node":"node1"}`); err != nil {
		t.Fatalf("an agent may not write its own report: %v", err)
	}
	denied(t, "write another node's report", annotate(a, "agent-b", `{"node":"node2","cached":["all"]}`), "only its own Pod agent-a")
	denied(t, "patch another agent's image", patchPod(a, "agent-b", `{"spec":{"containers":[{"name":"kip-agent","image":"attacker/root:1"}]}}`), "only its own Pod")
	denied(t, "patch the controller's Pod", patchPod(a, "controller", `{"spec":{"containers":[{"name":"kip-agent","image":"attacker/root:1"}]}}`), "only its own Pod")
	denied(t, "patch its own image", patchPod(a, "agent-a", `{"spec":{"containers":[{"name":"kip-agent","image":"attacker/root:1"}]}}`), "only the annotation kip.dev/agent-report")
	denied(t, "relabel its own Pod", patchPod(a, "agent-a", `{"metadata":{"labels":{"app.kubernetes.io/name":"other"}}}`), "only the annotation kip.dev/agent-report")
	denied(t, "add another annotation", patchPod(a, "agent-a", `{"metadata":{"annotations":{"kip.dev/images":"x=y"}}}`), "only the annotation kip.dev/agent-report")
	unbound := agentClient(t, ns, "", "")
	denied(t, "write its report with a token bound to no Pod", annotate(unbound, "agent-a", `{}`), "bound to its Pod")

	leader := &coordinationv1.Lease{}
	if err := a.Get(ctx, types.NamespacedName{Namespace: ns, Name: "kip-k8s-image-puller"}, leader); err != nil {
		t.Fatal(err)
	}
	leader.Spec.HolderIdentity = ptr.To("agent-a")
	denied(t, "update the leader Lease", a.Update(ctx, leader), "only its pull-slot Leases")

	taken := &coordinationv1.Lease{}
	if err := a.Get(ctx, types.NamespacedName{Namespace: ns, Name: "cache-agent-pull-slot-1"}, taken); err != nil {
		t.Fatal(err)
	}
	taken.Spec.HolderIdentity, taken.Spec.AcquireTime = ptr.To("agent-a"), ptr.To(metav1.NewMicroTime(time.Now()))
	denied(t, "take a slot another agent holds", a.Update(ctx, taken), "once free")
	impostor := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "cache-agent-pull-slot-2", Namespace: ns},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("agent-b"), LeaseDurationSeconds: ptr.To[int32](30), AcquireTime: &now, RenewTime: &now}}
	denied(t, "take a free slot in another agent's name", a.Create(ctx, impostor), "in its own name")

	mine := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "cache-agent-pull-slot-0", Namespace: ns},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("agent-a"), LeaseDurationSeconds: ptr.To[int32](30), AcquireTime: &now, RenewTime: &now}}
	if err := a.Create(ctx, mine); err != nil {
		t.Fatalf("an agent may not take a free slot: %v", err)
	}
	mine.Spec.HolderIdentity = nil
	if err := a.Update(ctx, mine); err != nil {
		t.Fatalf("an agent may not release its own slot: %v", err)
	}
	// An expired slot of another agent may be taken: agent-b stopped.
	expired := &coordinationv1.Lease{}
	if err := a.Get(ctx, types.NamespacedName{Namespace: ns, Name: "cache-agent-pull-slot-1"}, expired); err != nil {
		t.Fatal(err)
	}
	later := metav1.NewMicroTime(now.Add(31 * time.Second))
	expired.Spec.HolderIdentity, expired.Spec.AcquireTime, expired.Spec.RenewTime = ptr.To("agent-a"), &later, &later
	if err := a.Update(ctx, expired); err != nil {
		t.Fatalf("an agent may not take an expired slot: %v", err)
	}

	// The puller's own identity is not an agent: the policy leaves it alone.
	puller := impersonate(t, "system:serviceaccount:"+ns+":kubernetes-image-puller", []string{"system:serviceaccounts", "system:serviceaccounts:" + ns}, nil)
	if err := puller.Get(ctx, types.NamespacedName{Namespace: ns, Name: "kip-k8s-image-puller"}, leader); err != nil {
		t.Fatal(err)
	}
	leader.Spec.RenewTime = ptr.To(metav1.NewMicroTime(time.Now()))
	if err := puller.Update(ctx, leader); err != nil {
		t.Errorf("the controller may not renew its own Lease: %v", err)
	}
}

// TestNamespaceGrantsNeedAClusterAdmin: a user who may create and update
// Namespaces (a self-service namespace creator, say) cannot set the labels
// that grant privilege; the namespace's own admin cannot write its
// Namespace at all; a cluster admin can.
func TestNamespaceGrantsNeedAClusterAdmin(t *testing.T) {
	applyPolicies(t)
	ctx := t.Context()
	creator := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "kip-test-namespace-creator-" + strings.ToLower(t.Name()[:8])},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"create", "update", "patch", "get"}}}}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: creator.Name}, RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: creator.Name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "carol"}}}
	for _, o := range []client.Object{creator, binding} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), o) })
	}
	carol := impersonate(t, "carol", nil, nil)
	suffix := strings.ToLower(rand.String(5)) // namespaces of an earlier run may still be terminating
	granted := func(name string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kip.dev/agent-mode": "allowed"}}}
	}
	poll.Until(t, 30*time.Second, 200*time.Millisecond, "the policy kip-namespace-grants to be enforced", func() (bool, string) {
		err := carol.Create(ctx, granted("kip-carol-probe-"+suffix))
		if err == nil {
			_ = env.Client.Delete(ctx, granted("kip-carol-probe-"+suffix))
		}
		return err != nil && strings.Contains(err.Error(), "kip-namespace-grants"), fmt.Sprint(err)
	})
	denied(t, "create a namespace with agent mode granted", carol.Create(ctx, granted("kip-carol-1-"+suffix)), "only a cluster admin")

	plain := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kip-carol-2-" + suffix, Labels: map[string]string{"team": "carol"}}}
	if err := carol.Create(ctx, plain); err != nil {
		t.Fatalf("a namespace creator may not create a plain namespace: %v", err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), plain) })
	grant := func(c client.Client, label string) error {
		patch := fmt.Sprintf(`{"metadata":{"labels":{%q:"allowed"}}}`, label)
		return c.Patch(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: plain.Name}}, client.RawPatch(types.MergePatchType, []byte(patch)))
	}
	denied(t, "grant node writes to an existing namespace", grant(carol, "kip.dev/node-writes"), "only a cluster admin")
	if err := carol.Patch(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: plain.Name}}, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"team":"dave"}}}`))); err != nil {
		t.Errorf("other labels must stay writable: %v", err)
	}

	// The namespace's admin (the built-in admin role, by RoleBinding).
	adminBinding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "erin-admin", Namespace: plain.Name}, RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "admin"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "erin"}}}
	if err := env.Client.Create(ctx, adminBinding); err != nil {
		t.Fatal(err)
	}
	if err := grant(impersonate(t, "erin", nil, nil), "kip.dev/agent-mode"); !apierrors.IsForbidden(err) {
		t.Errorf("the namespace's admin labelled its Namespace: %v, want Forbidden", err)
	}

	if err := grant(env.Client, "kip.dev/agent-mode"); err != nil {
		t.Errorf("a cluster admin may not grant agent mode: %v", err)
	}
}

// TestNodeWritesAreHeldToKips attacks with the identity that the shipped
// node-condition and warm-node-taint templates bind their ClusterRoles to,
// as a stolen puller token would: its own condition and the removal of a
// startup taint pass; another condition, the node's addresses, a new
// taint, a system taint's removal, labels and unschedulable are denied by
// kip-node-writes. A cluster admin is not held by it.
func TestNodeWritesAreHeldToKips(t *testing.T) {
	applyPolicies(t)
	ctx := t.Context()
	ns := env.Namespace(t)
	for _, file := range []string{"openshift/node-condition-rbac.yaml", "openshift/warm-node-taint-rbac.yaml"} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		tmpl, err := template.Parse(data)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := tmpl.Process(map[string]string{"NAMESPACE": ns})
		if err != nil {
			t.Fatal(err)
		}
		for i := range objs {
			u := &objs[i]
			if err := env.Client.Create(ctx, u); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = env.Client.Delete(context.Background(), u) })
		}
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "kip-nw-" + strings.ToLower(rand.String(5)), Labels: map[string]string{"team": "a"}},
		Spec: corev1.NodeSpec{Taints: []corev1.Taint{
			{Key: "kip.dev/warming", Effect: corev1.TaintEffectNoSchedule},
			{Key: "node.kubernetes.io/not-ready", Effect: corev1.TaintEffectNoSchedule},
			{Key: "startup-taint.cluster-autoscaler.kubernetes.io/warming", Effect: corev1.TaintEffectNoSchedule},
		}},
	}
	if err := env.Client.Create(ctx, node); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), node) })
	node.Status = corev1.NodeStatus{
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady"}},
		Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.1"}},
	}
	if err := env.Client.Status().Update(ctx, node); err != nil {
		t.Fatal(err)
	}

	puller := impersonate(t, "system:serviceaccount:"+ns+":kubernetes-image-puller", []string{"system:serviceaccounts", "system:serviceaccounts:" + ns}, nil)
	target := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node.Name}}
	status := func(c client.Client, body string) error {
		return c.Status().Patch(ctx, target, client.RawPatch(types.StrategicMergePatchType, []byte(body)))
	}
	spec := func(c client.Client, body string) error {
		return c.Patch(ctx, target, client.RawPatch(types.MergePatchType, []byte(body)))
	}
	condition := func(typ, st string) string {
		return fmt.Sprintf(`{"status":{"conditions":[{"type":%q,"status":%q,"reason":"R","message":"m","lastHeartbeatTime":"2026-12-07T08:00:00Z","lastTransitionTime":"2026-12-07T08:00:00Z"}]}}`, typ, st)
	}
	taints := func(keys ...string) string {
		var list []string
		for _, k := range keys {
			list = append(list, fmt.Sprintf(`{"key":%q,"effect":"NoSchedule"}`, k))
		}
		return `{"spec":{"taints":[` + strings.Join(list, ",") + `]}}`
	}

	poll.Until(t, 30*time.Second, 200*time.Millisecond, "the policy kip-node-writes to be enforced", func() (bool, string) {
		// A new value each time: one written before the policy loaded
		// would make the same write again a no-op, which it allows.
		err := spec(puller, fmt.Sprintf(`{"metadata":{"labels":{"team":%q}}}`, "probe-"+strings.ToLower(rand.String(5))))
		return err != nil && strings.Contains(err.Error(), "kip-node-writes"), fmt.Sprint(err)
	})
	if err := status(puller, condition("kip.dev/ImagesCached", "True")); err != nil {
		t.Errorf("the puller may not write its own condition: %v", err)
	}
	denied(t, "change the Ready condition", status(puller, condition("Ready", "False")), "only the condition kip.dev/ImagesCached")
	denied(t, "add another condition", status(puller, condition("DiskPressure", "True")), "only the condition kip.dev/ImagesCached")
	denied(t, "rewrite the node's address", status(puller, `{"status":{"addresses":[{"type":"InternalIP","address":"203.0.113.9"}]}}`), "no other status")
	denied(t, "add a taint", spec(puller, taints("kip.dev/warming", "node.kubernetes.io/not-ready", "startup-taint.cluster-autoscaler.kubernetes.io/warming", "evil.example/x")), "not add or change one")
	denied(t, "remove a system taint", spec(puller, taints("kip.dev/warming", "startup-taint.cluster-autoscaler.kubernetes.io/warming")), "under kubernetes.io")
	denied(t, "relabel the node", spec(puller, `{"metadata":{"labels":{"team":"c"}}}`), "not change its labels")
	denied(t, "cordon the node", spec(puller, `{"spec":{"unschedulable":true}}`), "not change its labels, annotations or spec")
	if err := spec(puller, taints("node.kubernetes.io/not-ready", "startup-taint.cluster-autoscaler.kubernetes.io/warming")); err != nil {
		t.Errorf("the puller may not remove its startup taint: %v", err)
	}
	if err := spec(puller, taints("node.kubernetes.io/not-ready")); err != nil {
		t.Errorf("the puller may not remove the cluster autoscaler's startup taint: %v", err)
	}

	// A cluster admin is not held by it.
	if err := status(env.Client, condition("Ready", "False")); err != nil {
		t.Errorf("a cluster admin's node write was denied: %v", err)
	}
	if err := spec(env.Client, `{"metadata":{"labels":{"team":"b"}}}`); err != nil {
		t.Errorf("a cluster admin's node write was denied: %v", err)
	}
}
