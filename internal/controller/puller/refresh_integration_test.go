//go:build integration

package puller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/daemonset"
	"github.com/kip-image-puller/kip/internal/dev/registrytest"
	"github.com/kip-image-puller/kip/internal/dev/testenv"
)

// TestRefreshRollsOnlyWhenADigestChanged runs the controller against real
// registries on loopback: an open one, one behind credentials given by a
// pull secret, and an address where nothing listens. Each controller start
// refreshes at once, as a refresh every CACHING_INTERVAL_HOURS does.
func TestRefreshRollsOnlyWhenADigestChanged(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	open := registrytest.Serve(t, "", "")
	private := registrytest.Serve(t, "dev", "s3cret")

	javaRef := open + "/ws/java:17"
	java1 := registrytest.Push(t, javaRef, authn.Anonymous)
	pinned := open + "/ws/node@" + registrytest.Push(t, open+"/ws/node:22", authn.Anonymous)
	privateRef := private + "/ws/python:3"
	python1 := registrytest.Push(t, privateRef, &authn.Basic{Username: "dev", Password: "s3cret"})
	goneRef := "127.0.0.1:1/ws/gone:1" // nothing listens on port 1

	if err := k8s.Create(ctx, registrytest.PullSecret(ns, "regcred", private, "dev", "s3cret")); err != nil {
		t.Fatal(err)
	}
	images := "java=" + javaRef + ";node=" + pinned + ";python=" + privateRef + ";gone=" + goneRef
	if err := k8s.Create(ctx, configMap(ns, map[string]string{config.KeyImages: images, config.KeyImagePullSecrets: "regcred"})); err != nil {
		t.Fatal(err)
	}

	// First start: digests are recorded, nothing rolls, the unreachable image is reported.
	run := startController(t, ns)
	waitForImages(t, ns, dsName, images)
	recorded := waitForRecorded(t, ns, map[string]string{javaRef: java1, privateRef: python1})
	if recorded.Rollout != "" {
		t.Errorf("first refresh rolled the pods (rollout %q)", recorded.Rollout)
	}
	if _, ok := recorded.Digests[pinned]; ok {
		t.Errorf("an image given by digest was refreshed: %v", recorded.Digests)
	}
	if _, ok := recorded.Digests[goneRef]; ok {
		t.Errorf("an unreachable image got a digest: %v", recorded.Digests)
	}
	failed := waitForEvent(t, ns, ReasonResolveFailed, "DaemonSet", goneRef)
	if strings.Contains(failed.Note, "s3cret") {
		t.Errorf("an Event reveals the registry password: %s", failed.Note)
	}
	run.stop(t)

	// Nothing moved: a refresh writes nothing. The new process reports the
	// gone tag again after its first refresh: proof the refresh was used.
	reported := len(eventsAbout(t, ns, ReasonResolveFailed, goneRef))
	run = startController(t, ns)
	testenv.Eventually(t, 20*time.Second, "the refresh after a restart", func() (bool, string) {
		n := len(eventsAbout(t, ns, ReasonResolveFailed, goneRef))
		return n > reported, fmt.Sprintf("%d ResolveFailed events about %s", n, goneRef)
	})
	if n := run.writes.Matching("/daemonsets/"); n != 0 {
		t.Errorf("a refresh with unchanged digests wrote the DaemonSet %d times", n)
	}
	run.stop(t)

	// The java tag moves: the next refresh rolls the pods, once.
	java2 := registrytest.Push(t, javaRef, authn.Anonymous)
	run = startController(t, ns)
	moved := waitForRecorded(t, ns, map[string]string{javaRef: java2, privateRef: python1})
	if moved.Rollout == "" {
		t.Error("a moved tag did not roll the pods")
	}
	waitForEvent(t, ns, ReasonImageChanged, "DaemonSet", javaRef)
	time.Sleep(2 * time.Second)
	if n := run.writes.Matching("/daemonsets/"); n != 1 {
		t.Errorf("the DaemonSet was written %d times for one moved tag, want 1", n)
	}
	ds, err := getDaemonSet(ns, dsName)
	if err != nil {
		t.Fatal(err)
	}
	if got := ds.Spec.Template.Annotations[daemonset.AnnotationRollout]; got != moved.Rollout {
		t.Errorf("pod template rollout annotation %q, want %q", got, moved.Rollout)
	}
}

// waitForRecorded waits until the DaemonSet records the given digests.
func waitForRecorded(t *testing.T, ns string, want map[string]string) daemonset.RefreshState {
	t.Helper()
	var state daemonset.RefreshState
	testenv.Eventually(t, 20*time.Second, "recorded digests", func() (bool, string) {
		ds, err := getDaemonSet(ns, dsName)
		if err != nil {
			return false, err.Error()
		}
		state = daemonset.RecordedRefresh(ds)
		for ref, d := range want {
			if state.Digests[ref] != d {
				return false, ds.Annotations[daemonset.AnnotationDigests]
			}
		}
		return true, ""
	})
	return state
}

// TestFailedRefreshIsRetriedBeforeTheInterval: a tag that cannot be resolved
// is tried again after a short, growing wait, not after the full
// CACHING_INTERVAL_HOURS: once the registry serves it, its digest is
// recorded within seconds.
func TestFailedRefreshIsRetriedBeforeTheInterval(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	reg := registrytest.Serve(t, "", "")
	ref := reg + "/ws/late:1" // not pushed yet: MANIFEST_UNKNOWN
	if err := k8s.Create(ctx, configMap(ns, map[string]string{config.KeyImages: "late=" + ref, config.KeyCachingIntervalHours: "24"})); err != nil {
		t.Fatal(err)
	}
	startController(t, ns, withOptions(func(o *Options) { o.RefreshRetry = 200 * time.Millisecond }))
	waitForEvent(t, ns, ReasonResolveFailed, "DaemonSet", ref)
	digest := registrytest.Push(t, ref, authn.Anonymous)
	waitForRecorded(t, ns, map[string]string{ref: digest})
}
