package agent

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	imagesapi "github.com/containerd/containerd/api/services/images/v1"
	"github.com/distribution/reference"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

// containerd's pin, and the agent's mark on what it pinned.
const (
	// PinLabel set to PinValue makes containerd's CRI report an image as
	// pinned (containerd 1.6.22+, 1.7.3+, 2.x), and the kubelet's image
	// garbage collection skip it.
	PinLabel = "io.cri-containerd.pinned"
	PinValue = "pinned"
	// PinnedByLabel marks the images the agent pinned, so that it unpins
	// only those, never a pin someone else set.
	PinnedByLabel = "kip.dev/pinned"
	// CRINamespace is the containerd namespace of the CRI's images.
	CRINamespace = "k8s.io"
)

// Containerd pins images through containerd's images API, on the same
// socket as its CRI.
type Containerd struct {
	conn   *grpc.ClientConn
	images imagesapi.ImagesClient
}

// DialContainerd connects to containerd's socket.
func DialContainerd(socket string) (*Containerd, error) {
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("containerd socket %s: %w", socket, err)
	}
	return &Containerd{conn: conn, images: imagesapi.NewImagesClient(conn)}, nil
}

// Close ends the connection.
func (c *Containerd) Close() error { return c.conn.Close() }

func withNamespace(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "containerd-namespace", CRINamespace)
}

// Pin labels the record of the name ref spells, and no other name of the
// image, as pinned, and as pinned by kip: containerd's CRI counts an image
// pinned while any of its names is. A record someone else pinned already
// is left alone, so that kip never takes over, and later removes, a pin it
// did not set.
func (c *Containerd) Pin(ctx context.Context, ref string) error {
	ctx = withNamespace(ctx)
	got, err := c.images.Get(ctx, &imagesapi.GetImageRequest{Name: dockerName(ref)})
	if err != nil {
		return fmt.Errorf("containerd image %s: %w", dockerName(ref), err)
	}
	img := got.GetImage()
	if img.Labels[PinLabel] == PinValue {
		return nil // pinned already: by kip, or by another tool, whose pin it stays
	}
	if img.Labels == nil {
		img.Labels = map[string]string{}
	}
	img.Labels[PinLabel] = PinValue
	img.Labels[PinnedByLabel] = "true"
	return c.update(ctx, img)
}

// Unpin implements Pinner: the records kip pinned whose name is not in
// keep lose both labels. Records kip did not mark keep their pins.
func (c *Containerd) Unpin(ctx context.Context, keep []string) ([]string, error) {
	ctx = withNamespace(ctx)
	kept := map[string]bool{}
	for _, k := range keep {
		kept[dockerName(k)] = true
	}
	resp, err := c.images.List(ctx, &imagesapi.ListImagesRequest{Filters: []string{fmt.Sprintf("labels.%q==true", PinnedByLabel)}})
	if err != nil {
		return nil, fmt.Errorf("list the images kip pinned: %w", err)
	}
	var released []string
	for _, img := range resp.GetImages() {
		if kept[dockerName(img.GetName())] {
			continue
		}
		delete(img.Labels, PinLabel)
		delete(img.Labels, PinnedByLabel)
		if err := c.update(ctx, img); err != nil {
			return released, err
		}
		released = append(released, img.GetName())
	}
	sort.Strings(released)
	return released, nil
}

// update writes an image record's pin labels, and only those.
func (c *Containerd) update(ctx context.Context, img *imagesapi.Image) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := c.images.Update(ctx, &imagesapi.UpdateImageRequest{
		Image:      img,
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"labels." + PinLabel, "labels." + PinnedByLabel}},
	})
	if err != nil {
		return fmt.Errorf("label containerd image %s: %w", img.GetName(), err)
	}
	return nil
}

// dockerName spells a reference as containerd's CRI names its images
// (docker.io/library/busybox:latest for busybox). An image ID or a name that
// does not parse is kept as it is.
func dockerName(ref string) string {
	if strings.HasPrefix(ref, "sha256:") {
		return ref
	}
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return ref
	}
	return named.String()
}
