package images

import (
	"slices"
	"strings"
	"testing"

	"github.com/kip-image-puller/kip/internal/config"
)

func TestEntryName(t *testing.T) {
	cases := []struct {
		ref   string
		index int
		want  string
	}{
		{"quay.io/eclipse/che-code:latest", 0, "che-code-0"},
		{"quay.io/devfile/universal-developer-image@sha256:" + strings.Repeat("a", 64), 3, "universal-developer-image-3"},
		{"registry.access.redhat.com/ubi9/python_311:1", 1, "python-311-1"},
		{"Registry.Example.com/UI/Theia_IDE:1", 7, "theia-ide-7"}, // not a valid reference, named all the same
		{"docker.io/library/node", 2, "node-2"},
		{"node:22", 4, "node-4"},
		{"reg.example.com/ws/" + strings.Repeat("x", 80) + ":1", 10, strings.Repeat("x", 60) + "-10"},
		{"reg.example.com/ws/___:1", 5, "image-5"},
		{"reg.example.com/ws/-a-:1", 6, "a-6"},
		{"reg.example.com/ws/az09:1", 8, "az09-8"},                                                  // the ends of each allowed range
		{"reg.example.com/ws/a.b~c:1", 9, "abc-9"},                                                  // other characters dropped
		{"Theia_IDE", 11, "theia-ide-11"},                                                           // not a valid reference, no tag, no path
		{"reg.example.com/ws/" + strings.Repeat("y", 61) + ":1", 1, strings.Repeat("y", 61) + "-1"}, // exactly the room left
	}
	for _, tc := range cases {
		got := EntryName(tc.ref, tc.index)
		if got != tc.want {
			t.Errorf("EntryName(%q, %d) = %q, want %q", tc.ref, tc.index, got, tc.want)
		}
	}
}

func TestParseAndMerge(t *testing.T) {
	plugin := "# plugin registry\nquay.io/eclipse/che-code:latest\n\nquay.io/devfile/universal-developer-image:ubi8-latest\n"
	devfile := "quay.io/devfile/universal-developer-image:ubi8-latest\nnot a reference\nquay.io/eclipse/che-java11-maven:next\n"
	a, pa := Parse("plugins", plugin)
	b, pb := Parse("devfiles", devfile)
	if len(pa) != 0 || len(pb) != 1 || pb[0].Line != 2 || !strings.Contains(pb[0].String(), "devfiles:2") {
		t.Fatalf("problems %v %v", pa, pb)
	}
	merged := Merge(a, b)
	// Sorted, whichever source listed an image first.
	want := []string{"quay.io/devfile/universal-developer-image:ubi8-latest", "quay.io/eclipse/che-code:latest", "quay.io/eclipse/che-java11-maven:next"}
	if again := Merge(b, a); !slices.Equal(again, want) {
		t.Errorf("merged in the other order %v", again)
	}
	if !slices.Equal(merged, want) {
		t.Errorf("merged %v", merged)
	}
	value := Value(merged)
	if value != "universal-developer-image-0=quay.io/devfile/universal-developer-image:ubi8-latest;che-code-1=quay.io/eclipse/che-code:latest;che-java11-maven-2=quay.io/eclipse/che-java11-maven:next" {
		t.Errorf("value %s", value)
	}
	// The value is a valid IMAGES, even when two repositories share a last segment.
	if _, _, err := config.Parse(map[string]string{config.KeyImages: Value(append(merged, "other.example.com/che-code:1"))}); err != nil {
		t.Errorf("IMAGES %v", err)
	}
}
