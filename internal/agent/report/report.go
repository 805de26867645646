// Package report is what an agent says of its node, as it travels on the
// agent's Pod (annotation kip.dev/agent-report) from the agent to the
// controller's status: pure data, shared by both ends.
package report

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// State is where one image stands on the agent's node.
type State string

// The states an image goes through. They match the words of daemonset mode's
// status: Cached, Pulling, Failed.
const (
	StateCached  State = "Cached"
	StatePulling State = "Pulling"
	StateFailed  State = "Failed"
)

// Image is the state of one image on the node.
type Image struct {
	Name  string `json:"name"`
	Image string `json:"image"`
	State State  `json:"state"`
	// Digest is the manifest digest held, when Cached.
	Digest string `json:"digest,omitempty"`
	// Pinned is the runtime's word, when Cached.
	Pinned bool `json:"pinned,omitempty"`
	// PinError says why pinning failed, when it did.
	PinError string `json:"pinError,omitempty"`
	// Reason and Message say why, when Failed.
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	// PullSeconds is how long the last successful pull took; 0 when the
	// image was already held.
	PullSeconds float64 `json:"pullSeconds,omitempty"`
	// SizeBytes is the image's size as the runtime says it, when held.
	SizeBytes int64 `json:"sizeBytes,omitempty"`
	// Since is when the image was first seen Cached, without a loss since.
	Since *time.Time `json:"since,omitempty"`
}

// Reasons of a Failed image, as in daemonset mode.
const (
	ReasonErrImagePull     = "ErrImagePull"
	ReasonImagePullBackOff = "ImagePullBackOff"
	ReasonCredentials      = "InvalidPullSecret" //nolint:gosec // G101: an event reason, not a credential
	// ReasonOverBudget: a Cached image held but not pinned, because the
	// images before it in IMAGES fill PIN_BUDGET; or a Failed one not
	// pulled, because the pull would leave less than IMAGEFS_FREE_FLOOR.
	ReasonOverBudget = "OverBudget"
)

// Annotation on the agent's own Pod carries its Node as JSON:
// the controller reads it with the Pods it already watches, so reporting
// needs no cluster-wide write.
const Annotation = "kip.dev/agent-report"

// Node is what the agent says of its node.
type Node struct {
	// Runtime is the runtime's name and version, as it said them.
	Runtime string `json:"runtime"`
	// Pinning is empty when every cached image is pinned; otherwise it says
	// why not and which runtime setting pins.
	Pinning string `json:"pinning,omitempty"`
	// SecretProblems names each pull secret that could not be used.
	SecretProblems []string `json:"secretProblems,omitempty"`
	// Heals counts the images pulled again after they disappeared.
	Heals int `json:"heals,omitempty"`
	// Disk is the node's image filesystem and what the images take of it,
	// when the agent measured it.
	Disk   *Disk   `json:"disk,omitempty"`
	Images []Image `json:"images"`
}

// Disk is what the agent measured of its node's image filesystem.
type Disk struct {
	// CapacityBytes and AvailableBytes are the filesystem's (statfs); 0
	// when the agent cannot see it.
	CapacityBytes  int64 `json:"capacityBytes,omitempty"`
	AvailableBytes int64 `json:"availableBytes,omitempty"`
	// ImagesBytes is what the runtime says every image it holds takes.
	ImagesBytes int64 `json:"imagesBytes,omitempty"`
	// CachedBytes and PinnedBytes add up the configured images held, and
	// those of them pinned.
	CachedBytes int64 `json:"cachedBytes"`
	PinnedBytes int64 `json:"pinnedBytes"`
	// PinBudgetBytes and FreeFloorBytes are PIN_BUDGET and
	// IMAGEFS_FREE_FLOOR on this node; -1 for a percentage of a capacity
	// the agent cannot see.
	PinBudgetBytes int64 `json:"pinBudgetBytes"`
	FreeFloorBytes int64 `json:"freeFloorBytes"`
	// Error says why the last measure failed, when it did; the numbers
	// above are then the last good ones.
	Error string `json:"error,omitempty"`
}

// Encode is the annotation's value.
func (r Node) Encode() (string, error) {
	b, err := json.Marshal(r)
	return string(b), err
}

// Decode reads an annotation's value.
func Decode(s string) (Node, error) {
	var r Node
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		return r, fmt.Errorf("annotation %s: %w", Annotation, err)
	}
	return r, nil
}

// PinningNote says why cached images are not pinned, and how the runtime
// pins; "" when each cached image is pinned. canPin is false where the agent
// has no way to pin on this runtime.
func PinningNote(runtime string, canPin bool, images []Image) string {
	var unpinned []string
	var pinErr string
	for _, r := range images {
		if r.State == StateCached && !r.Pinned && r.Reason != ReasonOverBudget {
			unpinned = append(unpinned, r.Name)
			if pinErr == "" {
				pinErr = r.PinError
			}
		}
	}
	if len(unpinned) == 0 {
		return ""
	}
	what := fmt.Sprintf("%d cached image(s) not pinned (%s)", len(unpinned), strings.Join(firstN(unpinned, 3), ", "))
	heal := "the agent pulls again whatever disappears, every HEAL_INTERVAL"
	lower := strings.ToLower(runtime)
	switch {
	case pinErr != "":
		return fmt.Sprintf("%s: %s; %s", what, pinErr, heal)
	case strings.HasPrefix(lower, "cri-o"):
		return fmt.Sprintf("%s: CRI-O pins through its configuration, [crio.image] pinned_images in crio.conf; %s", what, heal)
	case strings.HasPrefix(lower, "containerd") && canPin:
		return fmt.Sprintf("%s: %s ignores the label io.cri-containerd.pinned=pinned, which containerd 1.6.22+, 1.7.3+ and 2.x honour: upgrade containerd to pin; %s", what, runtime, heal)
	default:
		return fmt.Sprintf("%s: the agent cannot pin on %s; %s", what, runtime, heal)
	}
}

func firstN(s []string, n int) []string {
	if len(s) <= n {
		return s
	}
	return append(s[:n:n], fmt.Sprintf("and %d more", len(s)-n))
}

// Bytes writes a size for people: 1.5Gi, 300Mi, 12Ki, 512; "unknown" for
// -1, which stands for a size that cannot be told.
func Bytes(n int64) string {
	if n < 0 {
		return "unknown"
	}
	v, unit := float64(n), ""
	for _, u := range []string{"Ki", "Mi", "Gi", "Ti", "Pi"} {
		if v < 1024 {
			break
		}
		v, unit = v/1024, u
	}
	return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64) + unit
}

// Summary says in a line what the disk holds: the configured images' bytes
// cached and pinned, the pin budget, and the filesystem's free space.
func (d Disk) Summary() string {
	out := fmt.Sprintf("%s cached, %s pinned", Bytes(d.CachedBytes), Bytes(d.PinnedBytes))
	if d.PinBudgetBytes >= 0 {
		out += " of " + Bytes(d.PinBudgetBytes)
	}
	if d.CapacityBytes > 0 {
		out += fmt.Sprintf(", %s free of %s", Bytes(d.AvailableBytes), Bytes(d.CapacityBytes))
	}
	if d.Error != "" {
		out += "; cannot measure: " + d.Error
	}
	return out
}

// MaxMessage bounds a message the report carries.
const MaxMessage = 240

// Shorten cuts s to MaxMessage bytes, at a rune boundary, marking the cut.
func Shorten(s string) string {
	if len(s) <= MaxMessage {
		return s
	}
	cut := MaxMessage - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
