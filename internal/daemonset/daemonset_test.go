package daemonset

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"k8s.io/utils/ptr"

	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/nodewarm"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func mustParse(t *testing.T, data map[string]string) *config.Config {
	t.Helper()
	cfg, _, err := config.Parse(data)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return cfg
}

var goldenCases = []struct {
	name string
	data map[string]string
	opts Options
}{
	{
		name: "defaults",
		data: map[string]string{config.KeyImages: "java=quay.io/eclipse/che-java11-maven:next;node=node:22"},
		opts: Options{KIPImage: "registry.example.com/kip:v1"},
	},
	{
		name: "everything",
		data: map[string]string{
			config.KeyImages:               "z-last=reg.example.com/z:1;a-first=reg.example.com/a@sha256:" + sha("a") + ";m=reg.example.com/m",
			config.KeyCachingIntervalHours: "4",
			config.KeyMemoryRequest:        "16Mi",
			config.KeyMemoryLimit:          "32Mi",
			config.KeyCPURequest:           "10m",
			config.KeyCPULimit:             "100m",
			config.KeyDaemonSetName:        "cache",
			config.KeyNamespace:            "tools",
			config.KeyNodeSelector:         `{"node-role.kubernetes.io/worker": "", "kubernetes.io/os": "linux"}`,
			config.KeyImagePullSecrets:     "private;mirror",
			config.KeyAffinity:             `{"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}]}}}`,
			config.KeyTolerations:          `[{"key": "dedicated", "operator": "Equal", "value": "workspaces", "effect": "NoSchedule"}]`,
			config.KeyKIPImage:             "reg.example.com/kip:pinned",
			config.KeyDaemonSetAnnotations: `{"example.com/team": "dev-tools"}`,
		},
		opts: Options{
			KIPImage: "ignored.example.com/kip:v1",
			Owner:    &metav1.OwnerReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "kubernetes-image-puller", UID: "0b2a4c1e-0000-4000-8000-000000000001", Controller: ptr.To(true)},
			Refresh:  RefreshState{Digests: map[string]string{"reg.example.com/z:1": "sha256:" + sha("z"), "reg.example.com/m": "sha256:" + sha("m")}, Rollout: "3f9c0d2a1b7e6c54"},
		},
	},
	{
		name: "agent",
		data: map[string]string{
			config.KeyImages:           "java=quay.io/eclipse/che-java11-maven:next;node=node:22",
			config.KeyCachingMode:      config.ModeAgent,
			config.KeyPullParallelism:  "8",
			config.KeyHealInterval:     "2m",
			config.KeyCRISocket:        "/run/k3s/containerd/containerd.sock",
			config.KeyMaxNodesPulling:  "2",
			config.KeyImagePullSecrets: "private",
			config.KeyTolerations:      `[{"key": "dedicated", "operator": "Exists"}]`,
		},
		opts: Options{
			KIPImage: "registry.example.com/kip:v1",
			Refresh:  RefreshState{Digests: map[string]string{"node:22": "sha256:" + sha("n")}, Rollout: "ignored-in-agent-mode"},
		},
	},
	{
		name: "agent-probing",
		data: map[string]string{config.KeyImages: "java=quay.io/eclipse/che-java11-maven:next", config.KeyCachingMode: config.ModeAgent},
		opts: Options{KIPImage: "registry.example.com/kip:v1"},
	},
	{
		name: "openshift",
		data: map[string]string{config.KeyImages: "udi=quay.io/devfile/universal-developer-image:ubi8-latest"},
		opts: Options{KIPImage: "registry.example.com/kip:v1", OpenShift: true},
	},
}

func sha(s string) string {
	return string(bytes.Repeat([]byte(s), 64))[:64]
}

func TestBuildGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := YAML(Build(mustParse(t, tc.data), tc.opts))
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tc.name+".yaml")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/daemonset -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("DaemonSet differs from %s (go test ./internal/daemonset -update rewrites it); got:\n%s", path, got)
			}
		})
	}
}

func TestBuildIsDeterministic(t *testing.T) {
	tc := goldenCases[1]
	first, _ := YAML(Build(mustParse(t, tc.data), tc.opts))
	for i := 0; i < 50; i++ {
		again, _ := YAML(Build(mustParse(t, tc.data), tc.opts))
		if !bytes.Equal(first, again) {
			t.Fatalf("build %d differs from the first", i)
		}
	}
}

func TestBuildKeepsImagesOrder(t *testing.T) {
	ds := Build(mustParse(t, map[string]string{config.KeyImages: "c=c:1;a=a:1;b=b:1"}), Options{KIPImage: "k:1"})
	var names []string
	for _, c := range ds.Spec.Template.Spec.Containers {
		names = append(names, c.Name)
	}
	if got := names; len(got) != 3 || got[0] != "c" || got[1] != "a" || got[2] != "b" {
		t.Errorf("containers = %v, want IMAGES order c, a, b", names)
	}
}

func TestBuildPassesRestrictedPodSecurity(t *testing.T) {
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range goldenCases {
		if tc.data[config.KeyCachingMode] == config.ModeAgent {
			continue // TestAgentPodSecurity
		}
		t.Run(tc.name, func(t *testing.T) {
			ds := Build(mustParse(t, tc.data), tc.opts)
			results := evaluator.EvaluatePod(psapi.LevelVersion{Level: psapi.LevelRestricted, Version: psapi.LatestVersion()},
				&ds.Spec.Template.ObjectMeta, &ds.Spec.Template.Spec)
			for _, r := range results {
				if !r.Allowed {
					t.Errorf("restricted policy: %s: %s", r.ForbiddenReason, r.ForbiddenDetail)
				}
			}
		})
	}
}

func TestBuildPullPolicy(t *testing.T) {
	ds := Build(mustParse(t, map[string]string{config.KeyImages: "tag=a:1;digest=a@sha256:" + sha("0")}), Options{KIPImage: "k:1"})
	want := map[string]corev1.PullPolicy{"tag": corev1.PullAlways, "digest": corev1.PullIfNotPresent}
	for _, c := range ds.Spec.Template.Spec.Containers {
		if c.ImagePullPolicy != want[c.Name] {
			t.Errorf("%s: pull policy %s, want %s", c.Name, c.ImagePullPolicy, want[c.Name])
		}
	}
}

func TestRecordedRefreshRoundTrip(t *testing.T) {
	state := RefreshState{Digests: map[string]string{"a:1": "sha256:" + sha("1")}, Rollout: "abc"}
	ds := Build(mustParse(t, map[string]string{config.KeyImages: "a=a:1"}), Options{KIPImage: "k:1", Refresh: state})
	got := RecordedRefresh(ds)
	if got.Rollout != "abc" || got.Digests["a:1"] != state.Digests["a:1"] || len(got.Digests) != 1 {
		t.Errorf("RecordedRefresh = %+v, want %+v", got, state)
	}
	if RecordedRefresh(nil).Digests != nil {
		t.Error("RecordedRefresh(nil) is not empty")
	}
}

func TestDaemonSetAnnotations(t *testing.T) {
	cases := []struct {
		name          string
		user, digests map[string]string
		nodes         nodewarm.Settings
		want          map[string]string
	}{
		{"none", nil, nil, nodewarm.Settings{}, nil},
		{"the user's only", map[string]string{"team": "ws"}, nil, nodewarm.Settings{}, map[string]string{"team": "ws"}},
		{"digests only", nil, map[string]string{"a:1": "sha256:1"}, nodewarm.Settings{}, map[string]string{AnnotationDigests: `{"a:1":"sha256:1"}`}},
		{"both", map[string]string{"team": "ws"}, map[string]string{"a:1": "sha256:1"}, nodewarm.Settings{},
			map[string]string{"team": "ws", AnnotationDigests: `{"a:1":"sha256:1"}`}},
		{"the node condition", nil, nil, nodewarm.Settings{Condition: true}, map[string]string{nodewarm.AnnotationSettings: `{"condition":true}`}},
		{"the startup taint", nil, nil, nodewarm.Settings{Condition: true, Taint: "kip.dev/warming", Timeout: 30 * time.Minute},
			map[string]string{nodewarm.AnnotationSettings: `{"condition":true,"taint":"kip.dev/warming","timeout":"30m0s"}`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &config.Config{DaemonSetAnnotations: tc.user, NodeCondition: tc.nodes.Condition, WarmNodeTaint: tc.nodes.Taint, WarmNodeTimeout: tc.nodes.Timeout}
			got := daemonSetAnnotations(cfg, tc.digests)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("annotations %v, want %v", got, tc.want)
			}
		})
	}
}

// TestStartupTaintIsTolerated: with WARM_NODE_TAINT, the pods of both
// modes tolerate the taint, besides TOLERATIONS.
func TestStartupTaintIsTolerated(t *testing.T) {
	for _, mode := range []string{config.ModeDaemonSet, config.ModeAgent} {
		cfg := mustParse(t, map[string]string{config.KeyImages: "a=a:1", config.KeyCachingMode: mode,
			config.KeyTolerations: `[{"key":"gpu","operator":"Exists"}]`, config.KeyNodeCondition: "true", config.KeyWarmNodeTaint: "kip.dev/warming"})
		got := Build(cfg, Options{KIPImage: "k:1"}).Spec.Template.Spec.Tolerations
		if len(got) != 2 || got[0].Key != "gpu" || got[1] != nodewarm.Toleration("kip.dev/warming") || len(cfg.Tolerations) != 1 {
			t.Errorf("%s mode: tolerations %+v", mode, got)
		}
	}
}
