package config

import (
	"strings"
	"testing"
)

// TestAffinityAsTheAPIServerChecksIt: each case is something the API server
// refuses in a pod spec, accepted by a strict JSON decode alone.
func TestAffinityAsTheAPIServerChecksIt(t *testing.T) {
	tests := []struct {
		name, affinity, problem string
	}{
		{"a valid node affinity", `{"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]}]}}}`, ""},
		{"a valid pod anti-affinity", `{"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 50, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "x"}}}}]}}`, ""},
		{"no node selector term", `{"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}}`, "at least one term"},
		{"an unknown operator", `{"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["b"]}]}]}}}`, `"Equals" must be In, NotIn`},
		{"In without values", `{"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "In"}]}]}}}`, "needs at least one value"},
		{"Exists with values", `{"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["b"]}]}]}}}`, "takes no values"},
		{"Gt with a word", `{"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["ten"]}]}]}}}`, "whole numbers"},
		{"an invalid label key", `{"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "a b", "operator": "Exists"}]}]}}}`, `key: "a b"`},
		{"an invalid label value", `{"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "In", "values": ["b c"]}]}]}}}`, `values[0]: "b c"`},
		{"a field other than the name", `{"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchFields": [{"key": "spec.unschedulable", "operator": "In", "values": ["x"]}]}]}}}`, "metadata.name"},
		{"a weight of 0", `{"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 0, "preference": {}}]}}`, "from 1 to 100"},
		{"weights 1 and 100", `{"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1, "preference": {}}, {"weight": 100, "preference": {}}]}}`, ""},
		{"a weight of 101", `{"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 101, "preference": {}}]}}`, "101 must be from 1 to 100"},
		{"a node by name", `{"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}}}`, ""},
		{"not a node by name", `{"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]}]}}}`, ""},
		{"a node by two names", `{"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1", "n2"]}]}]}}}`, "exactly one value"},
		{"a node name that exists", `{"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "Exists"}]}]}}}`, "exactly one value"},
		{"Lt with a number", `{"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "Lt", "values": ["10"]}]}]}}}`, ""},
		{"Gt with two numbers", `{"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1", "2"]}]}]}}}`, "exactly one value"},
		{"an invalid topology key", `{"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{"topologyKey": "a b"}]}}`, `topologyKey: "a b"`},
		{"no topology key", `{"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{"labelSelector": {"matchLabels": {"app": "x"}}}]}}`, "topologyKey: required"},
		{"an invalid label selector", `{"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{"topologyKey": "zone", "labelSelector": {"matchExpressions": [{"key": "app", "operator": "Maybe"}]}}]}}`, "labelSelector"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := problemsOf(t, with(KeyAffinity, tt.affinity))
			switch {
			case tt.problem == "" && got != "":
				t.Errorf("refused: %s", got)
			case tt.problem != "" && (!strings.Contains(got, tt.problem) || !strings.Contains(got, KeyAffinity)):
				t.Errorf("problems %q, want one naming AFFINITY and saying %q", got, tt.problem)
			}
		})
	}
}

func TestOtherAPIServerRules(t *testing.T) {
	tests := []struct {
		name    string
		data    map[string]string
		problem string
	}{
		{"a toleration value that is not a label value", with(KeyTolerations, `[{"key": "a", "operator": "Equal", "value": "b c"}]`), `value "b c"`},
		{"a valid toleration value", with(KeyTolerations, `[{"key": "a", "operator": "Equal", "value": "b"}]`), ""},
		{"annotations over 256 KiB", with(KeyDaemonSetAnnotations, `{"a": "`+strings.Repeat("x", 256<<10)+`"}`), "at most 262144 bytes"},
		// go-containerregistry accepts these; containerd and CRI-O do not.
		{"a double slash in the repository", with(KeyImages, "ok=a:1;x=a//b:1"), `"a//b:1" is not an image reference`},
		{"a trailing dash in a path component", with(KeyImages, "ok=a:1;x=reg.example.com/a-:1"), "is not an image reference"},
		{"a KIP_IMAGE the runtime refuses", with(KeyKIPImage, "reg.example.com/kip/:1"), "KIP_IMAGE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := problemsOf(t, tt.data)
			switch {
			case tt.problem == "" && got != "":
				t.Errorf("refused: %s", got)
			case tt.problem != "" && !strings.Contains(got, tt.problem):
				t.Errorf("problems %q, want one saying %q", got, tt.problem)
			}
		})
	}
}
