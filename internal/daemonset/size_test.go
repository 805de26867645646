package daemonset

import (
	"fmt"
	"strings"
	"testing"

	"github.com/kip-image-puller/kip/internal/config"
)

func TestCheckSize(t *testing.T) {
	build := func(images int, annotation int, digests int) error {
		t.Helper()
		var entries []string
		for i := range images {
			entries = append(entries, fmt.Sprintf("i%d=reg.example.com/some/long/repository/path/image-%d:v1", i, i))
		}
		data := map[string]string{config.KeyImages: strings.Join(entries, ";")}
		if annotation > 0 {
			data[config.KeyDaemonSetAnnotations] = fmt.Sprintf(`{"note": %q}`, strings.Repeat("x", annotation))
		}
		cfg, _, err := config.Parse(data)
		if err != nil {
			return err // refused before a DaemonSet is built: as good
		}
		d := map[string]string{}
		for i := range digests {
			d[fmt.Sprintf("reg.example.com/some/long/repository/path/image-%d:v1", i)] = "sha256:" + strings.Repeat("0", 64)
		}
		return CheckSize(Build(cfg, Options{KIPImage: "reg/kip:1", Refresh: RefreshState{Digests: d}}))
	}
	tests := []struct {
		name                       string
		images, annotation, digest int
		problem                    string
	}{
		{"the most images allowed, every digest recorded", config.MaxImages, 0, config.MaxImages, ""},
		{"an annotation just under 256 KiB", 1, 256<<10 - 2000, 0, ""},
		{"an annotation over 256 KiB", 1, 256 << 10, 0, "annotations"},
		// Today's fault: 2,000 recorded digests pass 256 KiB after the first refresh.
		{"2,000 recorded digests", 1, 0, 2000, "annotations"},
	}
	for _, tt := range tests {
		err := build(tt.images, tt.annotation, tt.digest)
		switch {
		case tt.problem == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.problem != "" && (err == nil || !strings.Contains(err.Error(), tt.problem)):
			t.Errorf("%s: %v, want an error about %s", tt.name, err, tt.problem)
		}
	}
}
