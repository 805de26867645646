package images

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// maxListBytes bounds one fetched image list.
const maxListBytes = 4 << 20

// Read returns the text of an image list: an http(s) URL, fetched within
// timeout, or a file. It is the package's one edge, shared by `kip images`
// and the operator's CheCluster switch.
func Read(ctx context.Context, src string, timeout time.Duration) (string, error) {
	if !strings.HasPrefix(src, "http://") && !strings.HasPrefix(src, "https://") {
		b, err := os.ReadFile(src)
		return string(b), err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("HTTP %s", resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxListBytes))
	return string(b), err
}
