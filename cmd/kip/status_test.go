package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

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
