// Package version holds the build's version, set with -ldflags -X at build time.
package version

// Set by the Makefile: -X github.com/kip-image-puller/kip/internal/version.Version=...
var (
	Version = "dev"
	Commit  = "unknown"
	// ImageRepository is the project's published image, the default KIP_IMAGE.
	ImageRepository = "ghcr.io/kip-image-puller/kip"
)

// Image is the project's own image at this build's version.
func Image() string {
	tag := Version
	if tag == "dev" || tag == "" {
		tag = "latest"
	}
	return ImageRepository + ":" + tag
}
