package config

import (
	"errors"
	"strings"
	"testing"
)

// problemsOf parses data and returns its problems as text, one per line:
// the errors, or the IMAGES entries skipped.
func problemsOf(t *testing.T, data map[string]string) string {
	t.Helper()
	cfg, _, err := Parse(data)
	if err == nil {
		var lines []string
		for _, p := range cfg.Skipped {
			lines = append(lines, p.String())
		}
		return strings.Join(lines, "\n")
	}
	var cfgErr *Error
	if !errors.As(err, &cfgErr) {
		t.Fatalf("err = %v, want *Error", err)
	}
	var lines []string
	for _, p := range cfgErr.Problems {
		lines = append(lines, p.String())
	}
	return strings.Join(lines, "\n")
}

// TestBoundsAreInclusive pins each documented bound on both sides: the last
// value accepted and the first refused.
func TestBoundsAreInclusive(t *testing.T) {
	name63, name64 := strings.Repeat("d", 63), strings.Repeat("d", 64)
	cases := []struct {
		name    string
		data    map[string]string
		problem string // empty: valid
	}{
		{"interval 1 hour", with(KeyCachingIntervalHours, "1"), ""},
		{"interval 0 hours", with(KeyCachingIntervalHours, "0"), "from 1 to 8760"},
		{"interval one year", with(KeyCachingIntervalHours, "8760"), ""},
		{"interval one year and an hour", with(KeyCachingIntervalHours, "8761"), "from 1 to 8760"},
		{"memory request equal to the limit", with(KeyMemoryRequest, "20Mi", KeyMemoryLimit, "20Mi"), ""},
		{"memory request above the limit", with(KeyMemoryRequest, "21Mi", KeyMemoryLimit, "20Mi"), "at most CACHING_MEMORY_LIMIT"},
		{"cpu request equal to the limit", with(KeyCPURequest, "200m", KeyCPULimit, ".2"), ""},
		{"cpu request above the limit", with(KeyCPURequest, "201m", KeyCPULimit, ".2"), "at most CACHING_CPU_LIMIT"},
		{"a zero quantity", with(KeyMemoryLimit, "0"), "greater than zero"},
		{"a negative quantity", with(KeyCPULimit, "-1"), "greater than zero"},
		{"the smallest quantity", with(KeyCPURequest, "1m"), ""},
		{"a millibyte of memory", with(KeyMemoryRequest, "1m"), "whole bytes"},
		{"half a byte of memory", with(KeyMemoryRequest, "0.5"), "whole bytes"},
		{"one byte of memory", with(KeyMemoryRequest, "1"), ""},
		{"a fraction of a millicore", with(KeyCPURequest, "0.0005"), "whole millicores"},
		{"memory at the maximum", with(KeyMemoryRequest, "64Gi", KeyMemoryLimit, "64Gi"), ""},
		{"memory above the maximum", with(KeyMemoryLimit, "65Gi"), "at most 64Gi"},
		{"an absurd memory amount", with(KeyMemoryLimit, "8E"), "at most 64Gi"},
		{"cpu at the maximum", with(KeyCPULimit, "64"), ""},
		{"cpu above the maximum", with(KeyCPULimit, "64001m"), "at most 64"},
		{"the most images", with(KeyImages, manyImages(MaxImages)), ""},
		{"one image too many", with(KeyImages, manyImages(MaxImages+1)), "at most 200 images"},
		{"DaemonSet name of 63 characters", with(KeyDaemonSetName, name63), ""},
		{"DaemonSet name of 64 characters", with(KeyDaemonSetName, name64), "no more than 63 characters"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := problemsOf(t, tc.data)
			switch {
			case tc.problem == "" && got != "":
				t.Errorf("refused: %s", got)
			case tc.problem != "" && !strings.Contains(got, tc.problem):
				t.Errorf("problems %q, want one saying %q", got, tc.problem)
			}
		})
	}
}

// TestProblemsNameThePosition checks that IMAGES and TOLERATIONS problems
// name the entry they are about, counted from 1.
func TestProblemsNameThePosition(t *testing.T) {
	cases := []struct {
		name string
		data map[string]string
		want string
	}{
		{"second image entry empty", with(KeyImages, "a=a:1;;b=b:1"), "entry 2 is empty"},
		{"first image entry without '='", with(KeyImages, "java"), "entry 1 has no '='"},
		{"third image entry without a name", with(KeyImages, "a=a:1;b=b:1;=c:1"), "entry 3 has no name"},
		{"second image entry without an image", with(KeyImages, "a=a:1;b="), "entry 2 has no image"},
		{"second toleration", with(KeyTolerations, `[{"operator": "Exists"}, {"operator": "Sometimes"}]`), "toleration 2: operator \"Sometimes\""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := problemsOf(t, tc.data); !strings.Contains(got, tc.want) {
				t.Errorf("problems %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTolerationKeysAndOperators(t *testing.T) {
	cases := []struct {
		name, tolerations, problem string
	}{
		{"an empty key with Exists tolerates every taint", `[{"operator": "Exists"}]`, ""},
		{"an empty key with Equal", `[{"operator": "Equal", "value": "x"}]`, "an empty key needs operator Exists"},
		{"an empty key with the default operator", `[{"value": "x"}]`, "an empty key needs operator Exists"},
		{"a key with Equal", `[{"key": "dedicated", "operator": "Equal", "value": "ws"}]`, ""},
		{"Exists with a value", `[{"key": "k", "operator": "Exists", "value": "v"}]`, "takes no value"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := problemsOf(t, with(KeyTolerations, tc.tolerations))
			if (tc.problem == "") != (got == "") || !strings.Contains(got, tc.problem) {
				t.Errorf("problems %q, want %q", got, tc.problem)
			}
		})
	}
}

func TestErrorText(t *testing.T) {
	exact := strings.Repeat("v", maxShownValue)
	if got := (Problem{Key: "K", Value: exact, Expected: "e"}).String(); !strings.Contains(got, exact) || strings.Contains(got, "...") {
		t.Errorf("a value of exactly %d characters is shown whole: %q", maxShownValue, got)
	}
	long := exact + "tail"
	if got := (Problem{Key: "K", Value: long, Expected: "e"}).String(); strings.Contains(got, "tail") || !strings.Contains(got, exact+"...") {
		t.Errorf("a longer value is cut after %d characters with ...: %q", maxShownValue, got)
	}
	one := &Error{Problems: []Problem{{Key: "A", Value: "1", Expected: "x"}}}
	if got := one.Error(); !strings.HasPrefix(got, "invalid configuration, 1 error: ") {
		t.Errorf("one problem: %q", got)
	}
	two := &Error{Problems: []Problem{{Key: "A", Value: "1", Expected: "x"}, {Key: "B", Value: "2", Expected: "y"}}}
	if got := two.Error(); !strings.HasPrefix(got, "invalid configuration, 2 errors: ") || !strings.Contains(got, "; ") {
		t.Errorf("two problems: %q", got)
	}
}

func TestMisspelledKeysAreWarnedWithTheRightName(t *testing.T) {
	_, warns, err := Parse(with("images_", "x", "caching-interval-hours", "2"))
	if err != nil {
		t.Fatal(err)
	}
	text := ""
	for _, w := range warns {
		text += w.String() + "\n"
	}
	if !strings.Contains(text, "did you mean CACHING_INTERVAL_HOURS?") {
		t.Errorf("warnings %q, want one naming CACHING_INTERVAL_HOURS", text)
	}
}

func TestAnInvalidLimitIsReportedOnItsOwnKey(t *testing.T) {
	got := problemsOf(t, with(KeyMemoryRequest, "10Mi", KeyMemoryLimit, "0"))
	if !strings.Contains(got, KeyMemoryLimit) || strings.Contains(got, "at most") {
		t.Errorf("problems %q, want only the limit's own", got)
	}
}
