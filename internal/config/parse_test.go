package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func valid() map[string]string {
	return map[string]string{KeyImages: "java=quay.io/eclipse/che-java11-maven:next;node=node:22"}
}

func with(kv ...string) map[string]string {
	d := valid()
	for i := 0; i+1 < len(kv); i += 2 {
		d[kv[i]] = kv[i+1]
	}
	return d
}

func TestParseDefaults(t *testing.T) {
	cfg, warns, err := Parse(valid())
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(warns) != 0 {
		t.Errorf("warnings = %v, want none", warns)
	}
	checks := []struct {
		what      string
		got, want any
	}{
		{"interval", cfg.CachingIntervalHours, 1},
		{"memory request", cfg.MemoryRequest.String(), "10Mi"},
		{"memory limit", cfg.MemoryLimit.String(), "20Mi"},
		{"cpu request", cfg.CPURequest.String(), "50m"},
		{"cpu limit", cfg.CPULimit.String(), "200m"},
		{"daemonset", cfg.DaemonSetName, "kubernetes-image-puller"},
		{"deployment", cfg.DeploymentName, "kubernetes-image-puller"},
		{"namespace", cfg.Namespace, "k8s-image-puller"},
		{"node selector", len(cfg.NodeSelector), 0},
		{"pull secrets", len(cfg.ImagePullSecrets), 0},
		{"affinity", cfg.Affinity == nil, true},
		{"tolerations", len(cfg.Tolerations), 0},
		{"kip image", cfg.KIPImage, ""},
		{"annotations", len(cfg.DaemonSetAnnotations), 0},
		{"images", len(cfg.Images), 2},
		{"first image", cfg.Images[0], Image{Name: "java", Ref: "quay.io/eclipse/che-java11-maven:next"}},
		{"second image", cfg.Images[1], Image{Name: "node", Ref: "node:22"}},
		{"mode", cfg.CachingMode, ModeDaemonSet},
		{"pull parallelism", cfg.PullParallelism, 16},
		{"heal interval", cfg.HealInterval, 5 * time.Minute},
		{"cri socket", cfg.CRISocket, ""},
		{"max nodes pulling", cfg.MaxNodesPulling, 0},
		{"pin budget", cfg.PinBudget, DiskShare{Percent: 60}},
		{"free floor", cfg.ImageFsFreeFloor, DiskShare{Percent: 20}},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
}

func TestParseEveryKey(t *testing.T) {
	cfg, warns, err := Parse(map[string]string{
		KeyImages:               " a=reg.example.com/a:1 ;\n b=reg.example.com/b@sha256:" + strings.Repeat("ab", 32) + ";\n",
		KeyCachingIntervalHours: "6",
		KeyMemoryRequest:        "5Mi",
		KeyMemoryLimit:          "15Mi",
		KeyCPURequest:           "10m",
		KeyCPULimit:             "1",
		KeyDaemonSetName:        "cache",
		KeyDeploymentName:       "puller",
		KeyNamespace:            "tools",
		KeyNodeSelector:         `{"kubernetes.io/os": "linux"}`,
		KeyImagePullSecrets:     "one; two;",
		KeyAffinity:             `{"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}}`,
		KeyTolerations:          `[{"key": "dedicated", "operator": "Equal", "value": "ws", "effect": "NoSchedule"}]`,
		KeyKIPImage:             "reg.example.com/kip:v1",
		KeyDaemonSetAnnotations: `{"example.com/team": "tools"}`,
		KeyCachingMode:          "agent",
		KeyPullParallelism:      "8",
		KeyHealInterval:         "90s",
		KeyCRISocket:            "/run/crio/crio.sock",
	})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(warns) != 1 || warns[0].Key != KeyKIPImage || !strings.Contains(warns[0].Expected, "not used in agent mode") {
		t.Errorf("warnings = %v, want only KIP_IMAGE's: not used in agent mode", warns)
	}
	if len(cfg.Images) != 2 || cfg.Images[0].Digest || !cfg.Images[1].Digest {
		t.Errorf("images = %+v, want a tag then a digest", cfg.Images)
	}
	if cfg.CachingIntervalHours != 6 || cfg.MemoryLimit.Cmp(resource.MustParse("15Mi")) != 0 || cfg.CPULimit.Cmp(resource.MustParse("1")) != 0 {
		t.Errorf("interval/limits = %d %s %s", cfg.CachingIntervalHours, cfg.MemoryLimit.String(), cfg.CPULimit.String())
	}
	if cfg.DaemonSetName != "cache" || cfg.DeploymentName != "puller" || cfg.Namespace != "tools" {
		t.Errorf("names = %s %s %s", cfg.DaemonSetName, cfg.DeploymentName, cfg.Namespace)
	}
	if cfg.NodeSelector["kubernetes.io/os"] != "linux" {
		t.Errorf("node selector = %v", cfg.NodeSelector)
	}
	if strings.Join(cfg.ImagePullSecrets, ",") != "one,two" {
		t.Errorf("pull secrets = %v", cfg.ImagePullSecrets)
	}
	if cfg.Affinity == nil || cfg.Affinity.NodeAffinity == nil {
		t.Errorf("affinity = %+v", cfg.Affinity)
	}
	if len(cfg.Tolerations) != 1 || cfg.Tolerations[0].Effect != corev1.TaintEffectNoSchedule {
		t.Errorf("tolerations = %+v", cfg.Tolerations)
	}
	if cfg.KIPImage != "reg.example.com/kip:v1" || cfg.DaemonSetAnnotations["example.com/team"] != "tools" {
		t.Errorf("kip image / annotations = %s %v", cfg.KIPImage, cfg.DaemonSetAnnotations)
	}
	if cfg.CachingMode != ModeAgent || cfg.PullParallelism != 8 || cfg.HealInterval != 90*time.Second || cfg.CRISocket != "/run/crio/crio.sock" {
		t.Errorf("agent settings = %s %d %s %s", cfg.CachingMode, cfg.PullParallelism, cfg.HealInterval, cfg.CRISocket)
	}
}

// TestParseRejects holds malformed configurations; each must be reported
// with the offending key, and with the offending value where one is given.
func TestParseRejects(t *testing.T) {
	cases := []struct {
		name  string
		data  map[string]string
		key   string
		value string // a part of the value the error must repeat
	}{
		{"images missing", map[string]string{}, KeyImages, ""},
		{"images blank", map[string]string{KeyImages: "  "}, KeyImages, ""},
		{"images no equals", with(KeyImages, "java"), KeyImages, "java"},
		{"images empty name", with(KeyImages, "=node:22"), KeyImages, "=node:22"},
		{"images empty image", with(KeyImages, "node="), KeyImages, "node="},
		{"images uppercase name", with(KeyImages, "Java=java:17"), KeyImages, "Java=java:17"},
		{"images underscore name", with(KeyImages, "my_java=java:17"), KeyImages, "my_java"},
		{"images name too long", with(KeyImages, strings.Repeat("a", 64)+"=java:17"), KeyImages, "aaaa"},
		{"images duplicate name", with(KeyImages, "a=a:1;a=b:1"), KeyImages, "a=b:1"},
		{"images reserved name", with(KeyImages, ReservedContainerName+"=a:1"), KeyImages, ReservedContainerName},
		{"images bad reference", with(KeyImages, "a=UPPER/Case:tag"), KeyImages, "UPPER/Case"},
		{"images bad digest", with(KeyImages, "a=repo@sha256:123"), KeyImages, "sha256:123"},
		{"images reference with spaces", with(KeyImages, "a=repo name:1"), KeyImages, "repo name"},
		{"interval not a number", with(KeyCachingIntervalHours, "hourly"), KeyCachingIntervalHours, "hourly"},
		{"interval zero", with(KeyCachingIntervalHours, "0"), KeyCachingIntervalHours, "0"},
		{"interval negative", with(KeyCachingIntervalHours, "-3"), KeyCachingIntervalHours, "-3"},
		{"interval fractional", with(KeyCachingIntervalHours, "1.5"), KeyCachingIntervalHours, "1.5"},
		{"interval too long", with(KeyCachingIntervalHours, "100000"), KeyCachingIntervalHours, "100000"},
		{"memory request bad", with(KeyMemoryRequest, "10MB!"), KeyMemoryRequest, "10MB!"},
		{"memory limit bad", with(KeyMemoryLimit, "lots"), KeyMemoryLimit, "lots"},
		{"memory limit negative", with(KeyMemoryLimit, "-20Mi"), KeyMemoryLimit, "-20Mi"},
		{"cpu request bad", with(KeyCPURequest, "half"), KeyCPURequest, "half"},
		{"cpu limit zero", with(KeyCPULimit, "0"), KeyCPULimit, "0"},
		{"memory request above limit", with(KeyMemoryRequest, "30Mi"), KeyMemoryRequest, "30Mi"},
		{"cpu request above limit", with(KeyCPURequest, "1", KeyCPULimit, "500m"), KeyCPURequest, "1"},
		{"daemonset name invalid", with(KeyDaemonSetName, "Image Puller"), KeyDaemonSetName, "Image Puller"},
		{"daemonset name too long", with(KeyDaemonSetName, strings.Repeat("d", 64)), KeyDaemonSetName, "dddd"},
		{"deployment name invalid", with(KeyDeploymentName, "-puller"), KeyDeploymentName, "-puller"},
		{"namespace invalid", with(KeyNamespace, "my.namespace"), KeyNamespace, "my.namespace"},
		{"node selector array", with(KeyNodeSelector, `["a"]`), KeyNodeSelector, `["a"]`},
		{"node selector number value", with(KeyNodeSelector, `{"a": 1}`), KeyNodeSelector, `{"a": 1}`},
		{"node selector not json", with(KeyNodeSelector, `role=worker`), KeyNodeSelector, "role=worker"},
		{"node selector bad label key", with(KeyNodeSelector, `{"a b": "c"}`), KeyNodeSelector, `a b`},
		{"node selector bad label value", with(KeyNodeSelector, `{"a": "b c"}`), KeyNodeSelector, `b c`},
		{"annotations not object", with(KeyDaemonSetAnnotations, `"x"`), KeyDaemonSetAnnotations, `"x"`},
		{"annotations number value", with(KeyDaemonSetAnnotations, `{"a": true}`), KeyDaemonSetAnnotations, "true"},
		{"annotations bad key", with(KeyDaemonSetAnnotations, `{"/x": "y"}`), KeyDaemonSetAnnotations, "/x"},
		{"affinity not object", with(KeyAffinity, `[]`), KeyAffinity, "[]"},
		{"affinity unknown field", with(KeyAffinity, `{"nodeAfinity": {}}`), KeyAffinity, "nodeAfinity"},
		{"affinity wrong case", with(KeyAffinity, `{"NodeAffinity": {}}`), KeyAffinity, "NodeAffinity"},
		{"affinity wrong type", with(KeyAffinity, `{"nodeAffinity": "zone-a"}`), KeyAffinity, "zone-a"},
		{"tolerations object", with(KeyTolerations, `{"key": "a"}`), KeyTolerations, `{"key": "a"}`},
		{"tolerations bad operator", with(KeyTolerations, `[{"key": "a", "operator": "In"}]`), KeyTolerations, "In"},
		{"tolerations bad effect", with(KeyTolerations, `[{"key": "a", "operator": "Exists", "effect": "Never"}]`), KeyTolerations, "Never"},
		{"tolerations exists with value", with(KeyTolerations, `[{"key": "a", "operator": "Exists", "value": "b"}]`), KeyTolerations, `"b"`},
		{"tolerations empty key equal", with(KeyTolerations, `[{"operator": "Equal", "value": "b"}]`), KeyTolerations, "Equal"},
		{"tolerations seconds without NoExecute", with(KeyTolerations, `[{"key": "a", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 5}]`), KeyTolerations, "tolerationSeconds"},
		{"tolerations unknown field", with(KeyTolerations, `[{"key": "a", "operator": "Exists", "effects": "NoSchedule"}]`), KeyTolerations, "effects"},
		{"pull secret invalid", with(KeyImagePullSecrets, "Bad Secret"), KeyImagePullSecrets, "Bad Secret"},
		{"pull secret twice", with(KeyImagePullSecrets, "a;a"), KeyImagePullSecrets, "a;a"},
		{"kip image invalid", with(KeyKIPImage, "kip image:1"), KeyKIPImage, "kip image:1"},
		{"mode unknown", with(KeyCachingMode, "agents"), KeyCachingMode, "agents"},
		{"daemonset name too long for the agents", with(KeyCachingMode, "agent", KeyDaemonSetName, strings.Repeat("d", 58)), KeyDaemonSetName, "dddd"},
		{"daemonset name at the label limit, agent mode", with(KeyCachingMode, "agent", KeyDaemonSetName, strings.Repeat("d", 63)), KeyDaemonSetName, "dddd"},
		{"mode wrong case", with(KeyCachingMode, "Agent"), KeyCachingMode, "Agent"},
		{"parallelism zero", with(KeyPullParallelism, "0"), KeyPullParallelism, "0"},
		{"parallelism too high", with(KeyPullParallelism, "33"), KeyPullParallelism, "33"},
		{"parallelism not a number", with(KeyPullParallelism, "many"), KeyPullParallelism, "many"},
		{"heal interval no unit", with(KeyHealInterval, "300"), KeyHealInterval, "300"},
		{"heal interval too short", with(KeyHealInterval, "9s"), KeyHealInterval, "9s"},
		{"heal interval too long", with(KeyHealInterval, "25h"), KeyHealInterval, "25h"},
		{"max nodes pulling negative", with(KeyMaxNodesPulling, "-1"), KeyMaxNodesPulling, "-1"},
		{"max nodes pulling too many", with(KeyMaxNodesPulling, "1001"), KeyMaxNodesPulling, "1001"},
		{"cri socket relative", with(KeyCRISocket, "run/containerd/containerd.sock"), KeyCRISocket, "run/containerd"},
		{"cri socket unclean", with(KeyCRISocket, "/run/../etc/containerd.sock"), KeyCRISocket, "/run/../etc"},
		{"cri socket in the root folder", with(KeyCRISocket, "/containerd.sock"), KeyCRISocket, "/containerd.sock"},
		{"cri socket named after the node", with(KeyCRISocket, "/run/$(NODE_NAME).sock"), KeyCRISocket, "$(NODE_NAME).sock"},
		{"node condition not a bool", with(KeyNodeCondition, "yes"), KeyNodeCondition, "yes"},
		{"node condition capitalised", with(KeyNodeCondition, "True"), KeyNodeCondition, "True"},
		{"warm node taint without the condition", with(KeyWarmNodeTaint, "kip.dev/warming"), KeyWarmNodeTaint, "kip.dev/warming"},
		{"warm node taint not a key", with(KeyNodeCondition, "true", KeyWarmNodeTaint, "kip.dev/warming=:NoSchedule"), KeyWarmNodeTaint, "kip.dev/warming=:NoSchedule"},
		{"warm node taint: the control plane's", with(KeyNodeCondition, "true", KeyWarmNodeTaint, "node-role.kubernetes.io/control-plane"), KeyWarmNodeTaint, "node-role.kubernetes.io/control-plane"},
		{"warm node taint: the cloud provider's", with(KeyNodeCondition, "true", KeyWarmNodeTaint, "node.cloudprovider.kubernetes.io/uninitialized"), KeyWarmNodeTaint, "node.cloudprovider.kubernetes.io/uninitialized"},
		{"warm node taint: not-ready", with(KeyNodeCondition, "true", KeyWarmNodeTaint, "node.kubernetes.io/not-ready"), KeyWarmNodeTaint, "not-ready"},
		{"warm node taint: kubernetes.io itself", with(KeyNodeCondition, "true", KeyWarmNodeTaint, "kubernetes.io/arch"), KeyWarmNodeTaint, "kubernetes.io/arch"},
		{"warm node taint: k8s.io", with(KeyNodeCondition, "true", KeyWarmNodeTaint, "x.k8s.io/y"), KeyWarmNodeTaint, "x.k8s.io/y"},
		{"warm node taint: OpenShift's", with(KeyNodeCondition, "true", KeyWarmNodeTaint, "node.openshift.io/x"), KeyWarmNodeTaint, "node.openshift.io/x"},
		{"annotations: the puller's own domain", with(KeyDaemonSetAnnotations, `{"kip.dev/node-settings": "{}"}`), KeyDaemonSetAnnotations, "kip.dev/node-settings"},
		{"annotations: a subdomain of the puller's", with(KeyDaemonSetAnnotations, `{"x.kip.dev/images": "a=b"}`), KeyDaemonSetAnnotations, "x.kip.dev/images"},
		{"warm node timeout no unit", with(KeyWarmNodeTimeout, "30"), KeyWarmNodeTimeout, "30"},
		{"warm node timeout negative", with(KeyWarmNodeTimeout, "-1m"), KeyWarmNodeTimeout, "-1m"},
		{"warm node timeout too long", with(KeyWarmNodeTimeout, "25h"), KeyWarmNodeTimeout, "25h"},
		{"pin budget nothing", with(KeyPinBudget, "0"), KeyPinBudget, "0"},
		{"pin budget no percent", with(KeyPinBudget, "0%"), KeyPinBudget, "0%"},
		{"pin budget above the bound", with(KeyPinBudget, "96%"), KeyPinBudget, "96%"},
		{"pin budget a fraction", with(KeyPinBudget, "60.5%"), KeyPinBudget, "60.5%"},
		{"pin budget a word", with(KeyPinBudget, "half"), KeyPinBudget, "half"},
		{"pin budget negative", with(KeyPinBudget, "-1Gi"), KeyPinBudget, "-1Gi"},
		{"pin budget a part of a byte", with(KeyPinBudget, "1.5"), KeyPinBudget, "1.5"},
		{"free floor negative", with(KeyImageFsFreeFloor, "-5%"), KeyImageFsFreeFloor, "-5%"},
		{"free floor everything", with(KeyImageFsFreeFloor, "100%"), KeyImageFsFreeFloor, "100%"},
		{"cri socket node folder under the root", with(KeyCRISocket, "/$(NODE_NAME)/c.sock"), KeyCRISocket, "/$(NODE_NAME)/c.sock"},
		{"cri socket two node folders", with(KeyCRISocket, "/s/$(NODE_NAME)/$(NODE_NAME)/c.sock"), KeyCRISocket, "/s/"},
		{"cri socket node folder last", with(KeyCRISocket, "/s/$(NODE_NAME)"), KeyCRISocket, "/s/"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, err := Parse(tc.data)
			if err == nil {
				t.Fatalf("Parse accepted it: %+v", cfg)
			}
			if cfg != nil {
				t.Errorf("Parse returned a Config along with the error")
			}
			var cfgErr *Error
			ok := errors.As(err, &cfgErr)
			if !ok {
				t.Fatalf("error is %T, want *Error: %v", err, err)
			}
			var hit *Problem
			for i, p := range cfgErr.Problems {
				if p.Key == tc.key {
					hit = &cfgErr.Problems[i]
					break
				}
			}
			if hit == nil {
				t.Fatalf("no problem names %s: %v", tc.key, err)
			}
			if !strings.Contains(hit.Value, tc.value) {
				t.Errorf("problem value %q does not contain %q", hit.Value, tc.value)
			}
			if hit.Expected == "" {
				t.Errorf("problem says nothing of what is expected: %+v", hit)
			}
			if !strings.Contains(err.Error(), tc.key) {
				t.Errorf("error text %q does not name %s", err, tc.key)
			}
		})
	}
}

func TestParseReportsEveryProblemAtOnce(t *testing.T) {
	_, _, err := Parse(map[string]string{
		KeyImages:               "ok=a:1;Bad=b:1;noequals",
		KeyCachingIntervalHours: "0",
		KeyMemoryLimit:          "x",
		KeyNodeSelector:         "[]",
		KeyTolerations:          "{}",
	})
	var cfgErr *Error
	ok := errors.As(err, &cfgErr)
	if !ok {
		t.Fatalf("err = %v, want *Error", err)
	}
	want := []string{KeyImages, KeyCachingIntervalHours, KeyMemoryLimit, KeyNodeSelector, KeyTolerations}
	if got := strings.Join(cfgErr.Keys(), ","); got != strings.Join(want, ",") {
		t.Errorf("keys with problems = %s, want %s", got, strings.Join(want, ","))
	}
	if n := len(cfgErr.Problems); n != 6 {
		t.Errorf("%d problems, want 6 (two IMAGES entries): %v", n, err)
	}
}

// TestInvalidEntriesAreSkipped: an invalid IMAGES entry is left out and
// named; the valid ones are cached. Only what makes the DaemonSet
// impossible to build refuses the whole configuration.
func TestInvalidEntriesAreSkipped(t *testing.T) {
	tests := []struct {
		name, images string
		kept         string // names of the entries kept, in order
		skipped      []string
		refused      string // non-empty: the whole configuration is refused, with a problem saying this
	}{
		{"one bad entry among good ones", "a=a:1;Bad=b:1;c=c:1;d=d:1", "a,c,d", []string{`entry 2: name "Bad"`}, ""},
		{"a bad reference", "a=a:1;b=UPPER/Case:1", "a", []string{`entry 2: "UPPER/Case:1" is not an image reference`}, ""},
		{"an entry without '='", "java;a=a:1", "a", []string{"entry 1 has no '='"}, ""},
		{"an empty middle entry", "a=a:1;;b=b:1", "a,b", []string{"entry 2 is empty"}, ""},
		{"two trailing separators", "a=a:1;;", "a", []string{"entry 2 is empty"}, ""},
		{"every entry bad", "Bad=b:1;java", "", nil, "at least one valid entry"},
		{"names that collide", "a=a:1;a=b:1;c=c:1", "", nil, `name "a" is already used by entry 1`},
		{"the init container's name", ReservedContainerName + "=a:1;b=b:1", "", nil, "reserved"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _, err := Parse(with(KeyImages, tt.images))
			if tt.refused != "" {
				if err == nil || !strings.Contains(err.Error(), tt.refused) {
					t.Fatalf("err %v, want the configuration refused saying %q", err, tt.refused)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var kept []string
			for _, img := range cfg.Images {
				kept = append(kept, img.Name)
			}
			if got := strings.Join(kept, ","); got != tt.kept {
				t.Errorf("kept %s, want %s", got, tt.kept)
			}
			if len(cfg.Skipped) != len(tt.skipped) {
				t.Fatalf("skipped %v, want %d", cfg.Skipped, len(tt.skipped))
			}
			for i, want := range tt.skipped {
				if p := cfg.Skipped[i]; p.Key != KeyImages || !strings.Contains(p.String(), want) {
					t.Errorf("skipped[%d] = %s, want one saying %q", i, p, want)
				}
			}
		})
	}
	// Other errors refuse the configuration; the skipped entries are named too.
	_, _, err := Parse(with(KeyImages, "a=a:1;Bad=b:1", KeyCachingIntervalHours, "0"))
	if err == nil || !strings.Contains(err.Error(), `"Bad"`) || !strings.Contains(err.Error(), KeyCachingIntervalHours) {
		t.Errorf("err %v, want both the interval and the bad entry named", err)
	}
}

func TestParseAccepts(t *testing.T) {
	cases := []struct {
		name   string
		images string
		want   []string
	}{
		{"one trailing separator", "a=a:1;", []string{"a"}},
		{"surrounding spaces", "  a = a:1 ;  b=b:2  ", []string{"a", "b"}},
		{"one entry per line", "a=a:1;\nb=b:2;\n", []string{"a", "b"}},
		{"registry with port", "a=127.0.0.1:5000/ws/a:1", []string{"a"}},
		{"no tag", "a=quay.io/eclipse/che-code", []string{"a"}},
		{"numeric name", "1=a:1", []string{"1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			images, err := ParseImages(tc.images)
			if err != nil {
				t.Fatalf("ParseImages(%q): %v", tc.images, err)
			}
			var names []string
			for _, img := range images {
				names = append(names, img.Name)
			}
			if strings.Join(names, ",") != strings.Join(tc.want, ",") {
				t.Errorf("names = %v, want %v", names, tc.want)
			}
		})
	}
}

func TestParseWarnings(t *testing.T) {
	cases := []struct {
		name, key, value, expected string
	}{
		{"unknown key", "CACHE_SIZE", "1", "unknown key"},
		{"near miss", "caching-cpu-limit", "1", "did you mean CACHING_CPU_LIMIT"},
		{"same image twice", KeyImages, "a=a:1;b=a:1", "same image"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, warns, err := Parse(with(tc.key, tc.value))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(warns) != 1 || warns[0].Key != tc.key || !strings.Contains(warns[0].Expected, tc.expected) {
				t.Errorf("warnings = %+v, want one for %s saying %q", warns, tc.key, tc.expected)
			}
		})
	}
}

func TestFromEnvironKeepsOnlyKnownKeys(t *testing.T) {
	got := FromEnviron([]string{"PATH=/bin", "IMAGES=a=b:1;c=d:2", "NAMESPACE=tools", "HOME=/root", "BROKEN"})
	if len(got) != 2 || got[KeyImages] != "a=b:1;c=d:2" || got[KeyNamespace] != "tools" {
		t.Errorf("FromEnviron = %v", got)
	}
}

func TestCost(t *testing.T) {
	cases := []struct {
		name                 string
		images               string
		nodes                int
		memLimit, memRequest string
		cpuLimit, cpuRequest string
	}{
		{"documented example", "a=a:1;b=b:1;c=c:1;d=d:1;e=e:1", 20, "2000Mi", "1000Mi", "20", "5"},
		{"reported quota case", "a=a:1;b=b:1;c=c:1;d=d:1;e=e:1", 75, "7500Mi", "3750Mi", "75", "18750m"},
		{"one image one node", "a=a:1", 1, "20Mi", "10Mi", "200m", "50m"},
		// int64 milli-units overflow here: 20Gi x 500,000 in millibytes is 1.07e22.
		{"500 images of 20Gi on 1,000 nodes", "", 1000, "10000000Gi", "10000000Gi", "100k", "25k"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, err := Parse(map[string]string{KeyImages: tc.images})
			if tc.nodes == 1000 {
				// More images than IMAGES allows: Cost must not overflow for any input.
				cfg = &Config{Images: make([]Image, 500), MemoryLimit: resource.MustParse("20Gi"), MemoryRequest: resource.MustParse("20Gi"),
					CPULimit: resource.MustParse(".2"), CPURequest: resource.MustParse(".05")}
			} else if err != nil {
				t.Fatal(err)
			}
			c := cfg.Cost(tc.nodes)
			got := []string{c.MemoryLimit.String(), c.MemoryRequest.String(), c.CPULimit.String(), c.CPURequest.String()}
			want := []string{tc.memLimit, tc.memRequest, tc.cpuLimit, tc.cpuRequest}
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("cost = %v, want %v", got, want)
			}
		})
	}
}

func manyImages(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "i%d=reg.example.com/i:%d;", i, i)
	}
	return b.String()
}

func TestFingerprint(t *testing.T) {
	a := map[string]string{KeyImages: "a=a:1", KeyNamespace: "ns"}
	same := map[string]string{KeyNamespace: "ns", KeyImages: "a=a:1"}
	other := map[string]string{KeyImages: "a=a:2", KeyNamespace: "ns"}
	if Fingerprint(a) != Fingerprint(same) || Fingerprint(a) == Fingerprint(other) || Fingerprint(a) == Fingerprint(nil) || len(Fingerprint(a)) != 16 {
		t.Errorf("fingerprints %s %s %s %s", Fingerprint(a), Fingerprint(same), Fingerprint(other), Fingerprint(nil))
	}
}

// TestAgentSettingsAtTheirBounds accepts each agent and new-node setting
// at the edges of its range.
func TestAgentSettingsAtTheirBounds(t *testing.T) {
	for _, kv := range [][2]string{
		{KeyPullParallelism, "1"}, {KeyPullParallelism, "32"},
		{KeyHealInterval, "10s"}, {KeyHealInterval, "24h"},
		{KeyCRISocket, "/run/cri-dockerd.sock"},
		{KeyMaxNodesPulling, "0"}, {KeyMaxNodesPulling, "1000"},
		{KeyCRISocket, "/tmp/kip-cluster/sockets/$(NODE_NAME)/containerd.sock"},
		{KeyCRISocket, "/nodes/$(NODE_NAME)/run/crio.sock"},
		{KeyNodeCondition, "true"}, {KeyNodeCondition, "false"},
		{KeyWarmNodeTimeout, "0"}, {KeyWarmNodeTimeout, "24h"},
		{KeyPinBudget, "1%"}, {KeyPinBudget, "95%"}, {KeyPinBudget, "1"}, {KeyPinBudget, "20Gi"}, {KeyPinBudget, "500G"},
		{KeyImageFsFreeFloor, "0"}, {KeyImageFsFreeFloor, "0%"}, {KeyImageFsFreeFloor, "95%"}, {KeyImageFsFreeFloor, "10Gi"},
	} {
		if _, _, err := Parse(with(kv[0], kv[1])); err != nil {
			t.Errorf("%s=%s: %v", kv[0], kv[1], err)
		}
	}
	cfg, _, err := Parse(with(KeyCachingMode, ModeAgent, KeyDaemonSetName, strings.Repeat("d", 57)))
	if err != nil || ActiveDaemonSetName(cfg.DaemonSetName, cfg.CachingMode) != strings.Repeat("d", 57)+"-agent" {
		t.Errorf("the longest name in agent mode: %v", err)
	}
	if got := ActiveDaemonSetName("cache", ModeDaemonSet); got != "cache" {
		t.Errorf("daemonset mode: %s", got)
	}
}

func TestSplitNodeSocket(t *testing.T) {
	for socket, want := range map[string]string{
		"/tmp/kip-cluster/sockets/$(NODE_NAME)/containerd.sock": "/tmp/kip-cluster/sockets containerd.sock true",
		"/nodes/$(NODE_NAME)/run/crio.sock":                     "/nodes run/crio.sock true",
		"/run/containerd/containerd.sock":                       "  false",
	} {
		prefix, rest, named := SplitNodeSocket(socket)
		if got := fmt.Sprint(prefix, " ", rest, " ", named); got != want {
			t.Errorf("SplitNodeSocket(%q) = %q, want %q", socket, got, want)
		}
	}
}

// TestNewNodeSettings: the startup taint with its condition and timeout;
// the defaults ask for neither.
func TestNewNodeSettings(t *testing.T) {
	cfg, _, err := Parse(with(KeyNodeCondition, "true", KeyWarmNodeTaint, "startup-taint.cluster-autoscaler.kubernetes.io/kip", KeyWarmNodeTimeout, "0"))
	if err != nil || !cfg.NodeCondition || cfg.WarmNodeTaint != "startup-taint.cluster-autoscaler.kubernetes.io/kip" || cfg.WarmNodeTimeout != 0 {
		t.Errorf("%+v, %v", cfg, err)
	}
	def, _, err := Parse(with())
	if err != nil || def.NodeCondition || def.WarmNodeTaint != "" || def.WarmNodeTimeout != 30*time.Minute {
		t.Errorf("defaults: condition %v, taint %q, timeout %v, %v", def.NodeCondition, def.WarmNodeTaint, def.WarmNodeTimeout, err)
	}
}

func TestDiskShare(t *testing.T) {
	for _, tc := range []struct {
		value    string
		capacity int64
		bytes    int64
		text     string
	}{
		{"60%", 100 << 30, 60 << 30, "60%"},
		{"60%", 0, -1, "60%"}, // a percentage of an unknown capacity
		{"20Gi", 0, 20 << 30, "20Gi"},
		{"20Gi", 10 << 30, 20 << 30, "20Gi"},
		{"0", 10 << 30, 0, "0%"},
		{"1", 10 << 30, 1, "1"},
	} {
		s, err := ParseDiskShare(tc.value, 0)
		if err != nil {
			t.Fatalf("%s: %v", tc.value, err)
		}
		if got := s.Of(tc.capacity); got != tc.bytes {
			t.Errorf("%s of %d = %d, want %d", tc.value, tc.capacity, got, tc.bytes)
		}
		if s.String() != tc.text {
			t.Errorf("%s writes as %s, want %s", tc.value, s, tc.text)
		}
	}
	if _, err := ParseDiskShare("0", 1); err == nil || !strings.Contains(err.Error(), "from 1% to 95%") {
		t.Errorf("0 where a share is needed: %v", err)
	}
}
