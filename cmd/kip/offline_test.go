package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"

	agentreport "github.com/kip-image-puller/kip/internal/agent/report"
	"github.com/kip-image-puller/kip/internal/dev/registrytest"
)

func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := newRootCommand()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err := cmd.Execute()
	var ee exitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.code
	default:
		errOut.WriteString(err.Error())
		code = 1
	}
	return out.String(), errOut.String(), code
}

func writeConfigMap(t *testing.T, data string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "configmap.yaml")
	doc := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: k8s-image-puller\ndata:\n" + data
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const fiveImages = `  IMAGES: "a=reg.example.com/a:1;b=reg.example.com/b:1;c=reg.example.com/c:1;d=reg.example.com/d:1;e=reg.example.com/e:1"
`

func TestValidate(t *testing.T) {
	good := writeConfigMap(t, fiveImages)
	out, _, code := run(t, "validate", "-f", good)
	if code != 0 || !strings.HasPrefix(out, "valid: 5 images") || strings.Count(out, "\n") != 1 {
		t.Errorf("valid config: code %d, output %q; want 0 and one summary line", code, out)
	}

	bad := writeConfigMap(t, `  IMAGES: "Bad=x:1;ok=y:1"
  CACHING_MEMORY_LIMIT: "lots"
  NODE_SELECTOR: "[]"
  EXTRA: "1"
`)
	out, errOut, code := run(t, "validate", "-f", bad)
	if code != 1 {
		t.Errorf("invalid config: code %d, want 1", code)
	}
	if out != "" {
		t.Errorf("invalid config printed %q on stdout", out)
	}
	for _, want := range []string{`IMAGES: value "Bad=x:1"`, `CACHING_MEMORY_LIMIT: value "lots"`, `NODE_SELECTOR: value "[]"`, "warning: EXTRA"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}

	// One bad entry among good ones: the controller would cache the good
	// ones, but validate still fails and names the entry.
	partial := writeConfigMap(t, `  IMAGES: "ok=y:1;Bad=x:1;also=z:1"
`)
	out, errOut, code = run(t, "validate", "-f", partial)
	if code != 1 || out != "" || !strings.Contains(errOut, `IMAGES: value "Bad=x:1"`) || !strings.Contains(errOut, "the other 2 images") {
		t.Errorf("one bad entry: code %d, stdout %q, stderr %q; want 1, nothing, the entry named", code, out, errOut)
	}

	// Annotations the API server would refuse.
	huge := writeConfigMap(t, fiveImages+`  DAEMONSET_ANNOTATIONS: '{"note": "`+strings.Repeat("x", 256<<10)+`"}'
`)
	if _, errOut, code = run(t, "validate", "-f", huge); code != 1 || !strings.Contains(errOut, "annotations") {
		t.Errorf("oversized annotations: code %d, stderr %.300q", code, errOut)
	}

	_, errOut, code = run(t, "validate", "-f", filepath.Join(t.TempDir(), "missing.yaml"))
	if code == 0 || !strings.Contains(errOut, "missing.yaml") {
		t.Errorf("missing file: code %d, stderr %q", code, errOut)
	}
}

func TestRender(t *testing.T) {
	path := writeConfigMap(t, fiveImages)
	out, _, code := run(t, "render", "-f", path, "--kip-image", "reg.example.com/kip:v9")
	if code != 0 {
		t.Fatalf("code %d", code)
	}
	var ds appsv1.DaemonSet
	if err := yaml.UnmarshalStrict([]byte(out), &ds); err != nil {
		t.Fatalf("render output is not a DaemonSet: %v\n%s", err, out)
	}
	if ds.Name != "kubernetes-image-puller" || len(ds.Spec.Template.Spec.Containers) != 5 {
		t.Errorf("rendered %s with %d containers", ds.Name, len(ds.Spec.Template.Spec.Containers))
	}
	if got := ds.Spec.Template.Spec.InitContainers[0].Image; got != "reg.example.com/kip:v9" {
		t.Errorf("init image %q", got)
	}
	if strings.Contains(out, "status:") {
		t.Errorf("render prints a status:\n%s", out)
	}
	again, _, _ := run(t, "render", "-f", path, "--kip-image", "reg.example.com/kip:v9")
	if again != out {
		t.Error("two renders of the same ConfigMap differ")
	}
	osOut, _, _ := run(t, "render", "-f", path, "--openshift")
	if strings.Contains(osOut, "runAsUser") || !strings.Contains(out, "runAsUser") {
		t.Error("--openshift should drop runAsUser, and only then")
	}
}

func TestPlan(t *testing.T) {
	path := writeConfigMap(t, fiveImages)
	out, _, code := run(t, "plan", "-f", path, "--nodes", "20")
	if code != 0 {
		t.Fatalf("code %d: %s", code, out)
	}
	wantRows := map[string][]string{
		"memory limit":   {"20Mi", "100Mi", "2000Mi"},
		"memory request": {"10Mi", "50Mi", "1000Mi"},
		"cpu limit":      {"200m", "1", "20"},
		"cpu request":    {"50m", "250m", "5"},
	}
	for label, want := range wantRows {
		found := false
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, label+" ") {
				found = true
				if got := strings.Fields(strings.TrimPrefix(line, label)); strings.Join(got, " ") != strings.Join(want, " ") {
					t.Errorf("%s: %v, want %v", label, got, want)
				}
			}
		}
		if !found {
			t.Errorf("no %q row in:\n%s", label, out)
		}
	}
	if _, errOut, code := run(t, "plan", "-f", path, "--nodes", "0"); code == 0 || !strings.Contains(errOut, "--nodes") {
		t.Errorf("--nodes 0: code %d, %q", code, errOut)
	}
}

func TestVersion(t *testing.T) {
	out, _, code := run(t, "version")
	if code != 0 || !strings.HasPrefix(out, "kip ") {
		t.Errorf("version: %d %q", code, out)
	}
}

// TestPlanSizes: with --sizes, the disk per platform from the registry's
// manifests (compressed, then about 3x on a node, per node and over the
// cluster), and the images whose size could not be read, named.
func TestPlanSizes(t *testing.T) {
	reg := registrytest.Serve(t, "", "")
	var compressed int64
	for _, name := range []string{"a", "b"} {
		img, err := random.Image(100_000, 2)
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.ConfigFile(img, &v1.ConfigFile{OS: "linux", Architecture: "amd64"}); err != nil {
			t.Fatal(err)
		}
		m, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		compressed += m.Config.Size + m.Layers[0].Size + m.Layers[1].Size
		registrytest.PushImage(t, reg+"/ws/"+name+":1", img, authn.Anonymous)
	}
	path := writeConfigMap(t, "  IMAGES: a="+reg+"/ws/a:1;b="+reg+"/ws/b:1;gone="+reg+"/ws/gone:1\n")
	out, errOut, code := run(t, "plan", "-f", path, "--nodes", "10", "--sizes")
	if code != 0 {
		t.Fatalf("code %d: %s %s", code, out, errOut)
	}
	b := agentreport.Bytes
	want := strings.Join([]string{"linux/amd64", "2/3", b(compressed), b(3 * compressed), b(30 * compressed)}, " ")
	if !strings.Contains(squeeze(out), "PLATFORM IMAGES COMPRESSED PER NODE CLUSTER") {
		t.Errorf("no disk table:\n%s", out)
	}
	if !strings.Contains(squeeze(out), want) {
		t.Errorf("want a row %q in:\n%s", want, out)
	}
	if !strings.Contains(out, "size unknown: gone ("+reg+"/ws/gone:1): HTTP 404") {
		t.Errorf("the missing image not named:\n%s", out)
	}
	if plain, _, _ := run(t, "plan", "-f", path, "--nodes", "10"); strings.Contains(plain, "DISK") {
		t.Errorf("the disk without --sizes:\n%s", plain)
	}
}

// squeeze turns every run of blanks into one space, line by line.
func squeeze(s string) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	return strings.Join(lines, "\n")
}
