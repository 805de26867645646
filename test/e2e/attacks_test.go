//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/crane"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kip-image-puller/kip/internal/agent/report"
	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/privilege"
	"github.com/kip-image-puller/kip/internal/status"
)

// TestAttacksWithAnAgentsToken replays, on the local cluster, what a
// compromised agent could try with its own token, read from where the
// kubelet projected it for the agent's pod on node1: each write is denied
// by the API server, and nothing it aimed at changed.
func TestAttacksWithAnAgentsToken(t *testing.T) {
	ns := namespaceAt(t, "privileged")
	entries := pushSamples(t, "attack", 1, false)
	install(t, ns, map[string]string{"IMAGES": strings.Join(entries, ";"), "CACHING_MODE": "agent",
		"CRI_SOCKET": cluster.SocketPattern(), "MAX_NODES_PULLING": "1"})
	waitCached(t, entries, cluster.Nodes, nil)
	agentStatus(t, ns, "every agent reporting", func(r status.Report) (bool, string) {
		return r.Summary.Complete() && len(r.Nodes) == len(cluster.Nodes), r.Line()
	})

	byNode := map[string]corev1.Pod{}
	for _, p := range agentPods(t, ns) {
		byNode[p.Spec.NodeName] = p
	}
	mine, other := byNode["node1"], byNode["node2"]
	if mine.Name == "" || other.Name == "" {
		t.Fatalf("agents on node1 and node2: %v", byNode)
	}
	var controllers corev1.PodList
	if err := cluster.c.List(context.Background(), &controllers, client.InNamespace(ns), client.MatchingLabels{"app.kubernetes.io/component": "controller"}); err != nil || len(controllers.Items) == 0 {
		t.Fatalf("the controller's pod: %v (%d)", err, len(controllers.Items))
	}
	controller := controllers.Items[0]
	var leases coordinationv1.LeaseList
	if err := cluster.c.List(context.Background(), &leases, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var leader *coordinationv1.Lease
	for i := range leases.Items {
		if !strings.Contains(leases.Items[i].Name, "-pull-slot-") {
			leader = &leases.Items[i]
		}
	}
	if leader == nil {
		t.Fatalf("no leader Lease among %d in %s", len(leases.Items), ns)
	}

	a := clientWithToken(t, agentToken(t, "node1", mine))
	ctx := t.Context()
	// The token works: the agent may read its own pod.
	if err := a.Get(ctx, client.ObjectKeyFromObject(&mine), &corev1.Pod{}); err != nil {
		t.Fatalf("the agent's token cannot read its own pod: %v", err)
	}
	patch := func(name, body string) error {
		return a.Patch(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}, client.RawPatch(types.StrategicMergePatchType, []byte(body)))
	}
	root := `{"spec":{"containers":[{"name":%q,"image":"attacker.example/root:1"}]}}`
	forged, err := report.Node{Runtime: "forged"}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	attacks := []struct {
		name string
		err  error
	}{
		{"patch another agent pod's image", patch(other.Name, fmt.Sprintf(root, other.Spec.Containers[0].Name))},
		{"patch the controller's pod", patch(controller.Name, fmt.Sprintf(root, controller.Spec.Containers[0].Name))},
		{"write another node's report", patch(other.Name, fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, report.Annotation, forged))},
		{"update the leader Lease", func() error {
			l := leader.DeepCopy()
			l.Spec.HolderIdentity = &mine.Name
			return a.Update(ctx, l)
		}()},
	}
	for _, at := range attacks {
		if at.err == nil {
			t.Errorf("%s: allowed", at.name)
			continue
		}
		if !apierrors.IsForbidden(at.err) && !apierrors.IsInvalid(at.err) {
			t.Errorf("%s: %v, want the API server's denial", at.name, at.err)
			continue
		}
		t.Logf("%s: denied: %v", at.name, at.err)
	}

	// Nothing changed.
	var got corev1.Pod
	if err := cluster.c.Get(ctx, client.ObjectKeyFromObject(&other), &got); err != nil || got.Spec.Containers[0].Image != other.Spec.Containers[0].Image {
		t.Errorf("node2's agent runs %s (%v)", got.Spec.Containers[0].Image, err)
	}
	if v := got.Annotations[report.Annotation]; v == forged {
		t.Errorf("node2's report is the forged one")
	}
	if err := cluster.c.Get(ctx, client.ObjectKeyFromObject(&controller), &got); err != nil || got.Spec.Containers[0].Image != controller.Spec.Containers[0].Image {
		t.Errorf("the controller runs %s (%v)", got.Spec.Containers[0].Image, err)
	}
	var l coordinationv1.Lease
	if err := cluster.c.Get(ctx, client.ObjectKeyFromObject(leader), &l); err != nil || l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == mine.Name {
		t.Errorf("the leader Lease is held by %v (%v)", l.Spec.HolderIdentity, err)
	}
}

// agentToken reads the service-account token the kubelet of node projected
// into pod, from the node's kubelet directory, as code running in the
// agent's container would read it.
func agentToken(t *testing.T, node string, pod corev1.Pod) string {
	t.Helper()
	pattern := filepath.Join(cluster.Dir, "nodes", node, "kubelet", "pods", string(pod.UID), "volumes", "kubernetes.io~projected", "*", "token")
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		t.Fatalf("no token under %s: %v", pattern, err)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// clientWithToken is a client of the local cluster that authenticates with
// token only: the cluster's address and CA, no client certificate.
func clientWithToken(t *testing.T, token string) client.Client {
	t.Helper()
	admin, err := clientcmd.BuildConfigFromFlags("", cluster.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	rc := &rest.Config{Host: admin.Host, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: admin.CAData, CAFile: admin.CAFile}}
	c, err := client.New(rc, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestNamespaceEditorCannotGetRoot is the attack of a user who holds the
// namespace's edit role: they ask for agent mode, with their own KIP_IMAGE
// and a socket under /etc, and try to grant it to themselves. The API
// server denies the grant; kip refuses agent mode with an Event naming
// the label, creates no agent and no pod with the runtime's socket, and
// keeps caching in daemonset mode.
func TestNamespaceEditorCannotGetRoot(t *testing.T) {
	ns := namespaceAt(t, "privileged")
	kubectl(t, "", "label", "namespace", ns, privilege.LabelAgentMode+"-") // privileged, but not granted
	kubectl(t, "", "create", "rolebinding", "mallory-edit", "--clusterrole=edit", "--user=mallory", "-n", ns)
	entries := pushSamples(t, "editor", 1, false)
	install(t, ns, map[string]string{"IMAGES": strings.Join(entries, ";")})
	waitCached(t, entries, cluster.Nodes, nil)

	// Their own image: kip's, under a name they control.
	own := cluster.Registry + "/mallory/kip:root"
	if err := crane.Copy(cluster.RegistryPush+"/kip:"+cluster.kipTag, cluster.RegistryPush+"/mallory/kip:root", crane.WithAuth(authn.Anonymous), crane.Insecure); err != nil {
		t.Fatal(err)
	}
	as := func(args ...string) (string, error) {
		return cluster.RunKubectl("", append([]string{"--as=mallory"}, args...)...)
	}
	if out, err := as("label", "namespace", ns, privilege.LabelAgentMode+"="+privilege.Allowed); err == nil || !strings.Contains(err.Error()+out, "forbidden") {
		t.Errorf("an editor granted agent mode to their namespace: %s %v", out, err)
	}
	patch := fmt.Sprintf(`{"data":{%q:"agent",%q:%q,%q:"/etc/kubernetes/pki/$(NODE_NAME)/x.sock"}}`, config.KeyCachingMode, config.KeyKIPImage, own, config.KeyCRISocket)
	if out, err := as("patch", "configmap", config.DefaultConfigMapName, "-n", ns, "--type=merge", "-p", patch); err != nil {
		t.Fatalf("an editor may edit the ConfigMap: %s %v", out, err)
	}
	eventually(t, time.Minute, "a PrivilegeNotGranted Event naming the label", func() (bool, string) {
		out, err := cluster.RunKubectl("", "get", "events", "-n", ns, "--field-selector", "reason="+config.ReasonPrivilegeNotGranted, "-o", "jsonpath={.items[*].message}")
		return err == nil && strings.Contains(out, privilege.LabelAgentMode+"=allowed"), out
	})
	extra := pushSamples(t, "editor2", 1, false) // caching goes on, in daemonset mode
	patchConfigMap(t, ns, map[string]string{config.KeyImages: strings.Join(append(entries, extra...), ";")})
	waitCached(t, extra, cluster.Nodes, nil)
	var pods corev1.PodList
	if err := cluster.c.List(context.Background(), &pods, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		for _, v := range p.Spec.Volumes {
			if v.HostPath != nil {
				t.Errorf("pod %s mounts the host's %s", p.Name, v.HostPath.Path)
			}
		}
		for _, c := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
			if sc := c.SecurityContext; sc != nil && sc.RunAsUser != nil && *sc.RunAsUser == 0 {
				t.Errorf("pod %s: container %s runs as root", p.Name, c.Name)
			}
		}
	}
	if out := kubectl(t, "", "get", "daemonsets", "-n", ns, "-o", "name"); strings.Contains(out, config.AgentSuffix) {
		t.Errorf("an agent DaemonSet without the grant: %s", out)
	}
}

// TestControlPlaneTaintIsRefused: WARM_NODE_TAINT naming the control
// plane's taint, in a namespace granted node writes, is refused as bad
// input: an Event names the key and the value, the DaemonSet does not
// tolerate it, and no node loses a taint.
func TestControlPlaneTaintIsRefused(t *testing.T) {
	ns := namespaceAt(t, "restricted", privilege.LabelNodeWrites)
	installWarmingRBAC(t, ns)
	entries := pushSamples(t, "cptaint", 1, false)
	install(t, ns, map[string]string{"IMAGES": strings.Join(entries, ";")})
	waitCached(t, entries, cluster.Nodes, nil)
	taintsBefore := nodeTaints(t)
	patchConfigMap(t, ns, map[string]string{config.KeyWarmNodeTaint: "node-role.kubernetes.io/control-plane"})
	eventually(t, time.Minute, "an InvalidConfiguration Event naming WARM_NODE_TAINT", func() (bool, string) {
		out, err := cluster.RunKubectl("", "get", "events", "-n", ns, "--field-selector", "reason="+config.ReasonInvalidConfiguration, "-o", "jsonpath={.items[*].message}")
		return err == nil && strings.Contains(out, config.KeyWarmNodeTaint) && strings.Contains(out, "node-role.kubernetes.io/control-plane"), out
	})
	out := kubectl(t, "", "get", "daemonset", dsName, "-n", ns, "-o", "jsonpath={.spec.template.spec.tolerations}")
	if strings.Contains(out, "control-plane") {
		t.Errorf("the DaemonSet tolerates the control plane's taint: %s", out)
	}
	if after := nodeTaints(t); after != taintsBefore {
		t.Errorf("the nodes' taints changed: %s -> %s", taintsBefore, after)
	}
}

// nodeTaints prints every node's taints.
func nodeTaints(t *testing.T) string {
	t.Helper()
	return kubectl(t, "", "get", "nodes", "-o", `jsonpath={range .items[*]}{.metadata.name}={.spec.taints}{"\n"}{end}`)
}
