package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	agentreport "github.com/kip-image-puller/kip/internal/agent/report"
	"github.com/kip-image-puller/kip/internal/status"
)

func report(images int) status.Report {
	r := status.Report{DaemonSet: "kubernetes-image-puller", Namespace: "kip"}
	for i := 1; i <= images; i++ {
		r.Images = append(r.Images, status.Image{Name: fmt.Sprintf("img%d", i), Ref: fmt.Sprintf("reg/img%d:1", i)})
	}
	for _, name := range []string{"node1", "node2"} {
		n := status.Node{Name: name, Selected: true, Ready: true, Images: map[string]status.Cell{}}
		for _, img := range r.Images {
			n.Images[img.Name] = status.Cell{State: status.Cached}
		}
		r.Nodes = append(r.Nodes, n)
	}
	r.Nodes[1].Cordoned = true
	r.Nodes[1].Images["img1"] = status.Cell{State: status.Failed, Reason: "ImagePullBackOff", Message: "401 Unauthorized"}
	r.Summary = status.Summary{NodesSelected: 2, NodesWarm: 1, ImagesWanted: 2 * images, ImagesCached: 2*images - 1}
	return r
}

func TestRenderStatusTable(t *testing.T) {
	out, err := renderStatus(report(2), "table")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("want header, two nodes and the summary:\n%s", out)
	}
	if f := strings.Fields(lines[0]); strings.Join(f, " ") != "NODE IMG1 IMG2" {
		t.Errorf("header %q", lines[0])
	}
	if !strings.Contains(lines[2], "node2 (Cordoned)") || !strings.Contains(lines[2], "Failed(ImagePullBackOff)") {
		t.Errorf("node2 row %q", lines[2])
	}
	if !strings.HasPrefix(lines[3], "3/4 images cached on 2/2 nodes (1 warm)") {
		t.Errorf("summary %q", lines[3])
	}
}

// TestRenderStatusSaysWhatEachAgentPins: in agent mode, a line per node
// with its runtime, its disk, and whether its images are pinned, and why
// not.
func TestRenderStatusSaysWhatEachAgentPins(t *testing.T) {
	r := report(2)
	note := "2 cached image(s) not pinned (img1, img2): containerd 1.6.20 ignores the label"
	r.Nodes[0].Agent = &status.AgentNode{Runtime: "containerd v2.4.2", Disk: &agentreport.Disk{
		CapacityBytes: 100 << 30, AvailableBytes: 40 << 30, CachedBytes: 12 << 30, PinnedBytes: 9 << 30, PinBudgetBytes: 60 << 30}}
	r.Nodes[1].Agent = &status.AgentNode{Runtime: "containerd 1.6.20", Pinning: note, Heals: 3, SecretProblems: []string{"broken: no .dockerconfigjson"}}
	out, err := renderStatus(r, "table")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 8 {
		t.Fatalf("want the table, the agents' header, a line per agent, the secret and the summary:\n%s", out)
	}
	for i, want := range []string{"AGENT ON RUNTIME HEALS DISK PINNED",
		"node1 containerd v2.4.2 0 12Gi cached, 9Gi pinned of 60Gi, 40Gi free of 100Gi yes", "node2 containerd 1.6.20 3 - no: " + note, "node2: pull secret left out: broken: no .dockerconfigjson"} {
		if got := strings.Join(strings.Fields(lines[3+i]), " "); got != want {
			t.Errorf("line %d: %q, want %q", 3+i, got, want)
		}
	}
	if plain, _ := renderStatus(report(2), "table"); strings.Contains(plain, "AGENT") {
		t.Errorf("daemonset mode shows agents:\n%s", plain)
	}
}

// TestRenderStatusMarksTaintedNodes: a node that still carries
// WARM_NODE_TAINT is marked, and the summary counts it.
func TestRenderStatusMarksTaintedNodes(t *testing.T) {
	r := report(2)
	r.Nodes[0].WarmingTaint = true
	r.Summary.NodesTainted = 1
	out, err := renderStatus(r, "table")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "node1 (Tainted)") || !strings.Contains(out, "node2 (Cordoned)") || !strings.Contains(out, "1 tainted while warming") {
		t.Errorf("want node1 marked Tainted and counted:\n%s", out)
	}
}

func TestRenderStatusNamesInvalidEntries(t *testing.T) {
	r := report(2)
	r.InvalidEntries = []string{`IMAGES: value "Bad=x:1": entry 3: name "Bad" becomes a container name`}
	out, err := renderStatus(r, "table")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if last := lines[len(lines)-1]; last != "invalid entry, left out: "+r.InvalidEntries[0] {
		t.Errorf("last line %q, want the invalid entry named", last)
	}
	if js, _ := renderStatus(r, "json"); !strings.Contains(js, `"invalidEntries"`) {
		t.Errorf("JSON lacks invalidEntries:\n%s", js)
	}
}

func TestRenderStatusTransposesManyImages(t *testing.T) {
	out, _ := renderStatus(report(transposeAbove+1), "table")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if !strings.HasPrefix(lines[0], "IMAGE") || len(lines) != transposeAbove+3 {
		t.Errorf("want a row per image:\n%s", out)
	}
}

func TestRenderStatusJSON(t *testing.T) {
	out, err := renderStatus(report(2), "json")
	if err != nil {
		t.Fatal(err)
	}
	var back status.Report
	if err := json.Unmarshal([]byte(out), &back); err != nil {
		t.Fatal(err)
	}
	if back.Nodes[1].Images["img1"].Reason != "ImagePullBackOff" || back.Summary.ImagesCached != 3 {
		t.Errorf("round trip %+v", back)
	}
}

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/kip -run %s -update to write it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run with -update to accept it):\n--- got\n%s--- want\n%s", path, got, want)
	}
}

// TestStatusTableLayout pins the table users read and scripts parse: one
// column per image, a row per node with its marks, the summary line, and the
// transposed layout for many images.
func TestStatusTableLayout(t *testing.T) {
	r := report(2)
	r.Nodes = append(r.Nodes, status.Node{Name: "node3", Selected: false, Ready: false, Images: map[string]status.Cell{
		"img1": {State: status.NotSelected}, "img2": {State: status.NotSelected},
	}})
	r.Nodes[0].Images["img2"] = status.Cell{State: status.Pulling}
	for _, tc := range []struct {
		name string
		r    status.Report
	}{
		{"status-table.golden", r},
		{"status-transposed.golden", report(transposeAbove + 1)},
	} {
		out, err := renderStatus(tc.r, "table")
		if err != nil {
			t.Fatal(err)
		}
		golden(t, tc.name, out)
	}
}

// TestStatusExitsTwoWhenItCannotRead covers the documented exit status 2:
// no cluster access.
func TestStatusExitsTwoWhenItCannotRead(t *testing.T) {
	for _, args := range [][]string{
		{"status", "--kubeconfig", filepath.Join(t.TempDir(), "missing")},
		{"status", "--kubeconfig", writeFile(t, "kubeconfig", "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1'}\ncontexts:\n- name: c\n  context: {cluster: c}\ncurrent-context: c\n"), "--timeout", "1s"},
	} {
		_, stderr, code := run(t, args...)
		if code != exitStatusError || !strings.HasPrefix(stderr, "Error: ") {
			t.Errorf("kip %s: exit %d, stderr %q; want %d and the error", strings.Join(args, " "), code, stderr, exitStatusError)
		}
	}
	if _, stderr, code := run(t, "status", "-o", "wide"); code != 1 || !strings.Contains(stderr, `--output: value "wide"`) {
		t.Errorf("a bad --output: exit %d, %q; want 1 naming the flag", code, stderr)
	}
	if _, stderr, code := run(t, "status", "--cpu-profile", filepath.Join(t.TempDir(), "no", "such", "dir", "cpu.out")); code != 1 || !strings.Contains(stderr, "--cpu-profile") {
		t.Errorf("an unwritable --cpu-profile: exit %d, %q; want 1 naming the flag", code, stderr)
	}
	// A run that fails to read still leaves a profile behind.
	profile := filepath.Join(t.TempDir(), "cpu.out")
	run(t, "status", "--kubeconfig", filepath.Join(t.TempDir(), "missing"), "--cpu-profile", profile)
	if fi, err := os.Stat(profile); err != nil || fi.Size() == 0 {
		t.Errorf("no CPU profile written: %v", err)
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestRenderStatusSaysWhatTheKubeletHolds: in daemonset mode, a line per
// node whose kubelet lists the configured images, with their bytes.
func TestRenderStatusSaysWhatTheKubeletHolds(t *testing.T) {
	r := report(2)
	r.Nodes[0].KubeletBytes = 1536 << 20
	out, err := renderStatus(r, "table")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(squeeze(out), "DISK ON CACHED (THE KUBELET'S SIZES)\nnode1 1.5Gi\n") {
		t.Errorf("no disk line for node1:\n%s", out)
	}
	if plain, _ := renderStatus(report(2), "table"); strings.Contains(plain, "DISK ON") {
		t.Errorf("a disk section with no sizes:\n%s", plain)
	}
}
