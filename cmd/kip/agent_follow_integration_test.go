//go:build integration

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/kip-image-puller/kip/internal/agent"
	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/daemonset"
	"github.com/kip-image-puller/kip/internal/dev/poll"
	"github.com/kip-image-puller/kip/internal/dev/testenv"
)

// TestAgentFollowsItsDaemonSet: an agent, with only the agents' RBAC,
// gets the list on its DaemonSet, then each new list or new digests; a
// status change brings nothing, and an unreadable list is skipped.
func TestAgentFollowsItsDaemonSet(t *testing.T) {
	ctx := t.Context()
	ns := env.Namespace(t)
	ds := agentsDaemonSet(t, ns)
	env.Create(t, ds)
	cs := agentClient(t, ns)

	first, lists, err := followDaemonSet(ctx, cs, ns, ds.Name, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Images) != 1 || first.Images[0].Ref != "reg.test/a:1" {
		t.Fatalf("first list %+v", first)
	}
	edit := func(change func(*appsv1.DaemonSet)) {
		t.Helper()
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(ds), ds); err != nil {
			t.Fatal(err)
		}
		change(ds)
		if err := env.Client.Update(ctx, ds); err != nil {
			t.Fatal(err)
		}
	}
	next := func(what string) agent.List {
		t.Helper()
		select {
		case l := <-lists:
			return l
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no list within 10s", what)
			return agent.List{}
		}
	}
	none := func(what string) {
		t.Helper()
		select {
		case l := <-lists:
			t.Fatalf("%s: brought a list %+v", what, l)
		case <-time.After(2 * time.Second):
		}
	}

	edit(func(ds *appsv1.DaemonSet) {
		ds.Annotations[daemonset.AnnotationImages] = "a=reg.test/a:1;b=reg.test/b:1;"
	})
	if l := next("a new image"); len(l.Images) != 2 || l.Images[1].Name != "b" {
		t.Errorf("after a new image: %+v", l)
	}
	edit(func(ds *appsv1.DaemonSet) {
		ds.Annotations[daemonset.AnnotationDigests] = `{"reg.test/a:1":"sha256:aa"}`
	})
	if l := next("new digests"); l.Digests["reg.test/a:1"] != "sha256:aa" {
		t.Errorf("after new digests: %+v", l)
	}
	edit(func(ds *appsv1.DaemonSet) { ds.Labels["unrelated"] = "yes" })
	none("an unrelated change")
	edit(func(ds *appsv1.DaemonSet) { ds.Annotations[daemonset.AnnotationImages] = "not an image list=;" })
	none("an unreadable list")
}

// agentsDaemonSet is the agents' DaemonSet of a one-image list in ns, as
// the controller builds it.
func agentsDaemonSet(t *testing.T, ns string) *appsv1.DaemonSet {
	t.Helper()
	cfg, _, err := config.Parse(map[string]string{config.KeyImages: "a=reg.test/a:1", config.KeyCachingMode: config.ModeAgent, config.KeyNamespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	ds := daemonset.Build(cfg, daemonset.Options{KIPImage: "kip:1"})
	ds.TypeMeta = metav1.TypeMeta{}
	return ds
}

// agentClient is a clientset that acts as the agents' ServiceAccount in
// ns, with the agents' ClusterRole (deploy/operator/rbac/agent_role.yaml)
// bound there, as the operator binds it.
func agentClient(t *testing.T, ns string) kubernetes.Interface {
	t.Helper()
	data, err := os.ReadFile(testenv.RepoFile(filepath.Join("deploy", "operator", "rbac", "agent_role.yaml")))
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.Unmarshal(data, &role); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Create(t.Context(), &role); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	env.Create(t, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "kip-agent", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: daemonset.AgentServiceAccount, Namespace: ns}},
	})
	env.Create(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: daemonset.AgentServiceAccount, Namespace: ns}})
	rc := rest.CopyConfig(env.Config)
	rc.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + ns + ":" + daemonset.AgentServiceAccount}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// TestPullerRemovedOnlyWhenItsDaemonSetGoes: the agent unpins on its way
// out only when its DaemonSet is gone or going, or its RBAC went with the
// puller; while the DaemonSet stays (a restart, a rollout), or when the API
// server cannot be asked, the pins stay.
func TestPullerRemovedOnlyWhenItsDaemonSetGoes(t *testing.T) {
	ctx := t.Context()
	ns := env.Namespace(t)
	ds := agentsDaemonSet(t, ns)
	ds.Finalizers = []string{"kip.dev/test-holds-it"}
	env.Create(t, ds)
	cs := agentClient(t, ns)
	check := func(what string, want bool) {
		t.Helper()
		removed, err := pullerRemoved(ctx, cs, ns, ds.Name)
		if err != nil || removed != want {
			t.Errorf("%s: removed %v (%v), want %v", what, removed, err, want)
		}
	}
	check("the DaemonSet in place", false)

	if err := env.Client.Delete(ctx, ds); err != nil {
		t.Fatal(err)
	}
	check("the DaemonSet being deleted", true)
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(ds), ds); err != nil {
		t.Fatal(err)
	}
	ds.Finalizers = nil
	if err := env.Client.Update(ctx, ds); err != nil {
		t.Fatal(err)
	}
	check("the DaemonSet gone", true)

	// The agents' RoleBinding removed with the puller (helm uninstall).
	other := env.Namespace(t)
	kept := agentsDaemonSet(t, other)
	env.Create(t, kept)
	otherCS := agentClient(t, other)
	if removed, err := pullerRemoved(ctx, otherCS, other, kept.Name); err != nil || removed {
		t.Fatalf("the DaemonSet in place: removed %v (%v)", removed, err)
	}
	if err := env.Client.Delete(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "kip-agent", Namespace: other}}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, 100*time.Millisecond, "removed once the agents' RoleBinding went", func() (bool, string) {
		removed, err := pullerRemoved(ctx, otherCS, other, kept.Name)
		return removed, fmt.Sprintf("removed %v (%v)", removed, err)
	})

	// No API server to ask: the pins stay.
	nowhere, err := kubernetes.NewForConfig(&rest.Config{Host: "https://127.0.0.1:1", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if removed, err := pullerRemoved(ctx, nowhere, ns, ds.Name); err == nil || removed {
		t.Errorf("without an API server: removed %v (%v), want an error", removed, err)
	}
}
