//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	imagesapi "github.com/containerd/containerd/api/services/images/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kip-image-puller/kip/internal/agent"
	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/daemonset"
	"github.com/kip-image-puller/kip/internal/dev/cri"
)

// TestAgentReadinessGatesRetirement: a switch from daemonset to agent mode
// with an image no agent can pull. An agent is ready only once it holds
// every image, so the agents never turn ready, and the old DaemonSet stays,
// holding the images, however often the controller looks. Once the image
// leaves the list, the agents turn ready and the old DaemonSet goes.
func TestAgentReadinessGatesRetirement(t *testing.T) {
	ns := namespaceAt(t, "privileged")
	entries := pushSamples(t, "gate", 2, false)
	missing := "gatemissing=" + cluster.Registry + "/e2e/not-pushed:v1"
	install(t, ns, map[string]string{"IMAGES": strings.Join(entries, ";"), "CRI_SOCKET": cluster.SocketPattern()})
	waitRolledOut(t, ns, len(cluster.Nodes))
	waitCached(t, entries, cluster.Nodes, nil)
	old, err := getDS(ns)
	if err != nil {
		t.Fatal(err)
	}

	patchConfigMap(t, ns, map[string]string{"IMAGES": strings.Join(append(append([]string{}, entries...), missing), ";"), "CACHING_MODE": config.ModeAgent})
	waitFailing(t, ns, "gatemissing", 3*time.Minute)
	// The sync point: the controller has looked at the retirement twice
	// more since the agents reported the image failing.
	waitLeaderReconciles(t, ns, 2)
	var agents appsv1.DaemonSet
	if err := cluster.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: dsName + config.AgentSuffix}, &agents); err != nil {
		t.Fatal(err)
	}
	if agents.Status.NumberReady != 0 {
		t.Errorf("%d agents ready, though none holds %s", agents.Status.NumberReady, missing)
	}
	if now, err := getDS(ns); err != nil || now.UID != old.UID {
		t.Fatalf("the old DaemonSet went while no agent was ready: %v", err)
	}
	waitCached(t, entries, cluster.Nodes, nil)

	patchConfigMap(t, ns, map[string]string{"IMAGES": strings.Join(entries, ";")})
	eventually(t, 3*time.Minute, "the agents ready and the old DaemonSet retired", func() (bool, string) {
		_, err := getDS(ns)
		return err != nil && strings.Contains(err.Error(), "not found"), fmt.Sprint(err)
	})
	waitCached(t, entries, cluster.Nodes, nil)
}

// waitLeaderReconciles waits until the puller's controller, read from its
// metrics, has finished n more reconciles of the puller than now.
func waitLeaderReconciles(t *testing.T, ns string, n float64) {
	t.Helper()
	pod := runningController(t, ns)
	body, err := scrapeMetrics(t, ns, pod)
	if err != nil {
		t.Fatal(err)
	}
	waitReconciles(t, ns, pod, reconciles(body, "puller"), n, time.Minute)
}

// TestForeignPinSurvives: an image another tool pinned on a node before
// kip came keeps its pin when kip, in agent mode, caches it, drops it from
// its list, and is uninstalled; kip's own pin on another image goes.
func TestForeignPinSurvives(t *testing.T) {
	node := pinningNodes(t)[0]
	entries := pushSamples(t, "foreign", 2, false)
	refs := refsOf(entries)
	c, err := cri.Dial(cluster.Socket(node))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	pull(t, c, refs[:1])
	pinAsAnotherTool(t, node, refs[0])

	ns := namespaceAt(t, "privileged")
	install(t, ns, map[string]string{"IMAGES": strings.Join(entries, ";"), "CACHING_MODE": config.ModeAgent, "CRI_SOCKET": cluster.SocketPattern()})
	waitCached(t, entries, cluster.Nodes, nil)
	waitPins(t, node, map[string]bool{refs[0]: true, refs[1]: true})

	patchConfigMap(t, ns, map[string]string{"IMAGES": entries[1]})
	waitAgentsList(t, ns, refs[1:])
	kubectl(t, "", "delete", "deployment", "-n", ns, "kubernetes-image-puller")
	eventually(t, 2*time.Minute, "the agents gone", func() (bool, string) {
		return len(agentPods(t, ns)) == 0, fmt.Sprintf("%d agents", len(agentPods(t, ns)))
	})
	waitPins(t, node, map[string]bool{refs[0]: true, refs[1]: false})
}

// waitPins waits until each ref's pin on node is as want says.
func waitPins(t *testing.T, node string, want map[string]bool) {
	t.Helper()
	eventually(t, 2*time.Minute, fmt.Sprintf("the pins on %s: %v", node, want), func() (bool, string) {
		pinned := pinnedOn(t, node)
		for ref, w := range want {
			if pinned[ref] != w {
				return false, fmt.Sprintf("%s pinned: %v", ref, pinned[ref])
			}
		}
		return true, ""
	})
}

// waitAgentsList waits until the agents' DaemonSet lists exactly refs.
func waitAgentsList(t *testing.T, ns string, refs []string) {
	t.Helper()
	eventually(t, time.Minute, "the agents' list", func() (bool, string) {
		ds, err := activeDS(ns)
		if err != nil {
			return false, err.Error()
		}
		list, err := daemonset.AgentImages(ds)
		if err != nil {
			return false, err.Error()
		}
		var got []string
		for _, img := range list {
			got = append(got, img.Ref)
		}
		return strings.Join(got, " ") == strings.Join(refs, " "), strings.Join(got, " ")
	})
}

// pinAsAnotherTool pins ref on node as a tool other than kip would: the
// containerd label the CRI honours, and no mark of kip's.
func pinAsAnotherTool(t *testing.T, node, ref string) {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+cluster.Socket(node), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	images := imagesapi.NewImagesClient(conn)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "containerd-namespace", agent.CRINamespace)
	got, err := images.Get(ctx, &imagesapi.GetImageRequest{Name: ref})
	if err != nil {
		t.Fatal(err)
	}
	img := got.GetImage()
	if img.Labels == nil {
		img.Labels = map[string]string{}
	}
	img.Labels[agent.PinLabel] = agent.PinValue
	if _, err := images.Update(ctx, &imagesapi.UpdateImageRequest{Image: img, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"labels." + agent.PinLabel}}}); err != nil {
		t.Fatal(err)
	}
}
