// Package imagebuild builds OCI images without a container engine, with
// go-containerregistry: the project's own image (kip and kip-sleep in an
// otherwise empty, non-root image), a pause image, and workspace-like sample
// images of chosen sizes for the local cluster, tests and benchmarks.
package imagebuild

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// NonRootUser is the user the project's images run as.
const NonRootUser = "65532:65532"

// File is one file of an image layer.
type File struct {
	Path string // absolute path in the image
	Mode int64
	Data []byte
}

// FileFromDisk reads a local file into an image file at path.
func FileFromDisk(local, path string, mode int64) (File, error) {
	data, err := os.ReadFile(local)
	if err != nil {
		return File{}, err
	}
	return File{Path: path, Mode: mode, Data: data}, nil
}

// Layer returns one layer holding files (and their parent directories).
func Layer(files ...File) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	epoch := time.Unix(0, 0) // reproducible layers
	for _, f := range files {
		for _, d := range parents(f.Path) {
			if dirs[d] {
				continue
			}
			dirs[d] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: epoch}); err != nil {
				return nil, err
			}
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: f.Path[1:], Mode: f.Mode, Size: int64(len(f.Data)), ModTime: epoch}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	raw := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil },
		tarball.WithMediaType(types.OCILayer))
}

// parents lists the directories above an absolute path, outermost first,
// without the leading slash.
func parents(path string) []string {
	var out []string
	for i := 1; i < len(path); i++ {
		if path[i] == '/' {
			out = append(out, path[1:i])
		}
	}
	return out
}

// Config is what an image says about how to run it.
type Config struct {
	Entrypoint []string
	Cmd        []string
	User       string
	OS, Arch   string
}

// Image returns an image of the given layers and config.
func Image(cfg Config, layers ...v1.Layer) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err := mutate.AppendLayers(img, layers...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = orDefault(cfg.OS, "linux"), orDefault(cfg.Arch, "amd64")
	cf.Created = v1.Time{Time: time.Unix(0, 0)}
	cf.Config.Entrypoint = cfg.Entrypoint
	cf.Config.Cmd = cfg.Cmd
	cf.Config.User = cfg.User
	cf.Config.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	return mutate.ConfigFile(img, cf)
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// Platform is one architecture's binaries of the project's image.
type Platform struct {
	Arch     string
	Kip      string // path of the kip binary for Arch
	KipSleep string // path of the kip-sleep binary for Arch
}

// KipImage is the project's image for one platform: /usr/bin/kip (the
// entrypoint) and /usr/bin/kip-sleep, nothing else, running as non-root.
func KipImage(p Platform) (v1.Image, error) {
	kip, err := FileFromDisk(p.Kip, "/usr/bin/kip", 0o755)
	if err != nil {
		return nil, err
	}
	sleep, err := FileFromDisk(p.KipSleep, "/usr/bin/kip-sleep", 0o755)
	if err != nil {
		return nil, err
	}
	layer, err := Layer(sleep, kip)
	if err != nil {
		return nil, err
	}
	return Image(Config{Entrypoint: []string{"/usr/bin/kip"}, Cmd: []string{"controller"}, User: NonRootUser, Arch: p.Arch}, layer)
}

// KipIndex is the project's multi-architecture image.
func KipIndex(platforms []Platform) (v1.ImageIndex, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range platforms {
		img, err := KipImage(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.Arch, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: p.Arch}},
		})
	}
	return idx, nil
}

// ToolImage is an image of one static binary of this machine at path, run
// as non-root with args.
func ToolImage(local, path string, args ...string) (v1.Image, error) {
	f, err := FileFromDisk(local, path, 0o755)
	if err != nil {
		return nil, err
	}
	layer, err := Layer(f)
	if err != nil {
		return nil, err
	}
	return Image(Config{Entrypoint: []string{path}, Cmd: args, User: NonRootUser}, layer)
}

// PauseImage is a pod sandbox image whose process is the static sleeper.
func PauseImage(kipSleep string) (v1.Image, error) {
	return ToolImage(kipSleep, "/pause", "876000h")
}

// SampleImage is a workspace-like image: layers of random, incompressible
// content adding up to about sizeBytes, and on top /bin/sleep (the static
// sleeper), so a pod can run it like a workspace image.
func SampleImage(sizeBytes int64, layers int, sleep File) (v1.Image, error) {
	if layers < 1 {
		layers = 1
	}
	var ls []v1.Layer
	per := sizeBytes / int64(layers)
	for i := 0; i < layers; i++ {
		l, err := random.Layer(per, types.OCILayer)
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
	}
	top, err := Layer(sleep)
	if err != nil {
		return nil, err
	}
	ls = append(ls, top)
	return Image(Config{Entrypoint: []string{"/bin/sleep"}, Cmd: []string{"3600"}, User: NonRootUser}, ls...)
}
