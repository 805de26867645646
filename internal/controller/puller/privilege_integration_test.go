//go:build integration

package puller

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/daemonset"
	"github.com/kip-image-puller/kip/internal/dev/testenv"
	"github.com/kip-image-puller/kip/internal/privilege"
)

// TestPrivilegeNeedsTheNamespaceGrant plays a namespace writer who asks,
// through the ConfigMap, for agent mode with an image of their own, node
// writes and a runtime socket under /etc. Until a cluster admin grants the
// namespace, nothing privileged is created: the DaemonSet of sleeping
// containers caches the images, without the taint's toleration, and a
// PrivilegeNotGranted Event names the labels missing. Once granted, the
// agents run the controller's own image, never KIP_IMAGE; a socket outside
// the allowed ones keeps agent mode refused, naming CRI_SOCKET.
func TestPrivilegeNeedsTheNamespaceGrant(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	const images = "a=reg.example.com/a:1"
	cm := configMap(ns, map[string]string{config.KeyImages: images, config.KeyCachingMode: config.ModeAgent,
		config.KeyKIPImage: "attacker.example.com/root:1", config.KeyCRISocket: testSocket,
		config.KeyNodeCondition: "true", config.KeyWarmNodeTaint: "kip.dev/warming"})
	if err := k8s.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	startController(t, ns)

	ds := waitForImages(t, ns, dsName, images)
	if daemonset.IsAgents(ds) {
		t.Fatal("agents created without the grant")
	}
	for _, tol := range ds.Spec.Template.Spec.Tolerations {
		if tol.Key == "kip.dev/warming" {
			t.Errorf("the pods tolerate the startup taint though node writes are not granted")
		}
	}
	e := waitForEvent(t, ns, ReasonPrivilegeNotGranted, "ConfigMap", privilege.LabelAgentMode+"=allowed")
	for _, want := range []string{config.KeyCachingMode, config.KeyNodeCondition, config.KeyWarmNodeTaint, privilege.LabelNodeWrites + "=allowed", "daemonset mode"} {
		if !strings.Contains(e.Note, want) {
			t.Errorf("the refusal %q does not name %s", e.Note, want)
		}
	}
	if _, err := getDaemonSet(ns, dsName+config.AgentSuffix); err == nil {
		t.Error("an agents' DaemonSet exists without the grant")
	}

	grant(t, ns)
	agents := waitForImages(t, ns, dsName+config.AgentSuffix, images)
	if got := agents.Spec.Template.Spec.Containers[0].Image; got != "registry.example.com/kip:default" {
		t.Errorf("the agents run %q, want the controller's own image, never KIP_IMAGE", got)
	}

	cm.Data[config.KeyCRISocket] = "/etc/kubernetes/pki/$(NODE_NAME)/x.sock"
	if err := k8s.Update(ctx, cm); err != nil {
		t.Fatal(err)
	}
	waitForEvent(t, ns, ReasonPrivilegeNotGranted, "ConfigMap", config.KeyCRISocket+`: value "/etc/kubernetes/pki/$(NODE_NAME)/x.sock"`)
	testenv.Eventually(t, 20*time.Second, "the agents keep their allowed socket", func() (bool, string) {
		got, err := getDaemonSet(ns, dsName+config.AgentSuffix)
		if err != nil {
			return false, err.Error()
		}
		for _, v := range got.Spec.Template.Spec.Volumes {
			if v.HostPath != nil && strings.HasPrefix(v.HostPath.Path, "/etc") {
				t.Fatalf("the agents mount %s", v.HostPath.Path)
			}
		}
		return true, ""
	})
}
