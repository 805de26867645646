package imagebuild

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// extract reads an image's files, failing the test on a file whose mode is
// not 0755.
func extract(t *testing.T, img v1.Image) map[string]string {
	t.Helper()
	files := map[string]string{}
	tr := tar.NewReader(mutate.Extract(img))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		files[h.Name] = string(b)
		if h.Typeflag == tar.TypeReg && h.Mode != 0o755 {
			t.Errorf("%s has mode %o", h.Name, h.Mode)
		}
	}
	return files
}

func TestToolImage(t *testing.T) {
	img, err := ToolImage(writeFile(t, t.TempDir(), "tool", "TOOL"), "/usr/bin/tool", "serve", "--dir", "/data")
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != NonRootUser || fmt.Sprint(cf.Config.Entrypoint) != "[/usr/bin/tool]" || fmt.Sprint(cf.Config.Cmd) != "[serve --dir /data]" {
		t.Errorf("config %+v", cf.Config)
	}
	if files := extract(t, img); files["usr/bin/tool"] != "TOOL" || len(files) != 3 {
		t.Errorf("files %v", files)
	}
	if _, err := ToolImage(filepath.Join(t.TempDir(), "missing"), "/usr/bin/tool"); err == nil {
		t.Error("no error for a missing binary")
	}
}

func TestKipImage(t *testing.T) {
	dir := t.TempDir()
	img, err := KipImage(Platform{Arch: "arm64", Kip: writeFile(t, dir, "kip", "KIP"), KipSleep: writeFile(t, dir, "kip-sleep", "SLEEP")})
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Architecture != "arm64" || cf.OS != "linux" || cf.Config.User != NonRootUser || cf.Config.Entrypoint[0] != "/usr/bin/kip" {
		t.Errorf("config %+v", cf.Config)
	}
	files := extract(t, img)
	if files["usr/bin/kip"] != "KIP" || files["usr/bin/kip-sleep"] != "SLEEP" {
		t.Errorf("files %v", files)
	}
	if _, shell := files["bin/sh"]; shell || len(files) != 4 { // usr/, usr/bin/, and the two binaries
		t.Errorf("the image holds more than the two binaries: %v", files)
	}
	// Building twice gives the same image: reproducible.
	again, _ := KipImage(Platform{Arch: "arm64", Kip: filepath.Join(dir, "kip"), KipSleep: filepath.Join(dir, "kip-sleep")})
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Errorf("digests %s and %s differ", d1, d2)
	}
}

func TestKipIndexIsMultiArch(t *testing.T) {
	dir := t.TempDir()
	p := Platform{Kip: writeFile(t, dir, "kip", "K"), KipSleep: writeFile(t, dir, "kip-sleep", "S")}
	amd, arm := p, p
	amd.Arch, arm.Arch = "amd64", "arm64"
	idx, err := KipIndex([]Platform{amd, arm})
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 2 || m.Manifests[0].Platform.Architecture != "amd64" || m.Manifests[1].Platform.Architecture != "arm64" {
		t.Errorf("manifests %+v", m.Manifests)
	}
}

func TestSampleImageSize(t *testing.T) {
	dir := t.TempDir()
	sleep, err := FileFromDisk(writeFile(t, dir, "s", "SLEEP"), "/bin/sleep", 0o755)
	if err != nil {
		t.Fatal(err)
	}
	img, err := SampleImage(3<<20, 3, sleep)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 4 {
		t.Fatalf("%d layers, want 3 random and the sleeper", len(layers))
	}
	var total int64
	for _, l := range layers {
		n, _ := l.Size()
		total += n
	}
	if total < 3<<20 { // random content does not compress
		t.Errorf("compressed size %d, want at least %d", total, 3<<20)
	}
}
