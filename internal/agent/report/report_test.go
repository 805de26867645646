package report

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestPinningNote(t *testing.T) {
	pinned := Image{Name: "a", State: StateCached, Pinned: true}
	loose := func(name string) Image { return Image{Name: name, State: StateCached} }
	tests := []struct {
		runtime string
		canPin  bool
		images  []Image
		want    []string // "" for no note
	}{
		{"containerd v2.4.2", true, []Image{pinned, {Name: "p", State: StatePulling}}, nil},
		{"containerd 1.6.20", true, []Image{pinned, loose("b")}, []string{"1 cached image(s) not pinned (b)", "containerd 1.6.20 ignores", "1.6.22+", "HEAL_INTERVAL"}},
		{"cri-o 1.31.0", false, []Image{loose("b"), loose("c"), loose("d"), loose("e")}, []string{"4 cached", "(b, c, d, and 1 more)", "pinned_images", "crio.conf"}},
		{"docker 27.0", false, []Image{loose("b")}, []string{"cannot pin on docker 27.0"}},
		{"containerd 2.4.2", true, []Image{{Name: "b", State: StateCached, PinError: "permission denied"}}, []string{"permission denied"}},
	}
	for _, tt := range tests {
		got := PinningNote(tt.runtime, tt.canPin, tt.images)
		if len(tt.want) == 0 && got != "" {
			t.Errorf("%s: note %q, want none", tt.runtime, got)
		}
		for _, w := range tt.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: note %q does not say %q", tt.runtime, got, w)
			}
		}
	}
}

func TestReportRoundTrip(t *testing.T) {
	r := Node{Runtime: "containerd 2.4.2", Heals: 2, Images: []Image{{Name: "a", Image: "reg.test/a:v1", State: StateFailed, Reason: ReasonErrImagePull, Message: "not found"}}}
	s, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(s)
	if err != nil || back.Runtime != r.Runtime || back.Heals != 2 || back.Images[0] != r.Images[0] {
		t.Errorf("%+v, %v", back, err)
	}
	if _, err := Decode("{"); err == nil || !strings.Contains(err.Error(), Annotation) {
		t.Errorf("bad annotation: %v", err)
	}
}

func TestBytes(t *testing.T) {
	const mib = 1 << 20
	for n, want := range map[int64]string{-1: "unknown", 0: "0", 512: "512", 1536 * mib: "1.5Gi", 2 * mib: "2Mi", 1<<40 + 1<<39: "1.5Ti", 1023: "1023", 1024: "1Ki"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %s, want %s", n, got, want)
		}
	}
}

func TestDiskSummary(t *testing.T) {
	for _, tt := range []struct {
		d    Disk
		want string
	}{
		{Disk{CapacityBytes: 100 << 30, AvailableBytes: 40 << 30, CachedBytes: 12 << 30, PinnedBytes: 9 << 30, PinBudgetBytes: 60 << 30}, "12Gi cached, 9Gi pinned of 60Gi, 40Gi free of 100Gi"},
		{Disk{CachedBytes: 3 << 30, PinnedBytes: 3 << 30, PinBudgetBytes: -1}, "3Gi cached, 3Gi pinned"},
	} {
		if got := tt.d.Summary(); got != tt.want {
			t.Errorf("Summary = %q, want %q", got, tt.want)
		}
	}
}

func TestShorten(t *testing.T) {
	if got := Shorten("short"); got != "short" {
		t.Errorf("short: %q", got)
	}
	long := strings.Repeat("é", MaxMessage) // 2 bytes each
	got := Shorten(long)
	if len(got) > MaxMessage || !strings.HasSuffix(got, "…") || !utf8.ValidString(got) {
		t.Errorf("Shorten: %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
	if exact := strings.Repeat("a", MaxMessage); Shorten(exact) != exact {
		t.Error("a message of MaxMessage bytes was cut")
	}
}
