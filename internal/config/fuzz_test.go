package config

import (
	"errors"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

// FuzzParseImages checks that any IMAGES value either parses into entries
// that satisfy the contract, or is rejected with IMAGES named; never a panic.
func FuzzParseImages(f *testing.F) {
	for _, seed := range []string{
		"java=quay.io/eclipse/che-java11-maven:next;node=node:22;",
		" a = a:1 ;\n b=b@sha256:" + strings.Repeat("0", 64),
		"a=a:1;;b",
		"=;=;",
		"a=b=c",
		"Ünïcode=ümlaut:1",
		";",
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, value string) {
		images, err := ParseImages(value)
		if err != nil {
			var cfgErr *Error
			ok := errors.As(err, &cfgErr)
			if !ok || len(cfgErr.Problems) == 0 {
				t.Fatalf("error %T %v: want *Error with problems", err, err)
			}
			for _, p := range cfgErr.Problems {
				if p.Key != KeyImages || p.Expected == "" {
					t.Fatalf("problem %+v: want key IMAGES and an expectation", p)
				}
			}
			return
		}
		if len(images) == 0 {
			t.Fatalf("accepted %q with no images", value)
		}
		seen := map[string]bool{}
		for _, img := range images {
			if errs := validation.IsDNS1123Label(img.Name); len(errs) > 0 {
				t.Fatalf("accepted name %q: %v", img.Name, errs)
			}
			if seen[img.Name] {
				t.Fatalf("accepted duplicate name %q", img.Name)
			}
			seen[img.Name] = true
			if img.Ref == "" || strings.ContainsAny(img.Ref, "; \t\n") {
				t.Fatalf("accepted reference %q", img.Ref)
			}
		}
		// Writing the entries back gives the same entries.
		var parts []string
		for _, img := range images {
			parts = append(parts, img.Name+"="+img.Ref)
		}
		again, err := ParseImages(strings.Join(parts, ";"))
		if err != nil || len(again) != len(images) {
			t.Fatalf("round trip of %q: %v, %d entries", value, err, len(again))
		}
	})
}

// FuzzParseJSONKeys feeds the same text to every JSON-valued key: each either
// parses or is rejected with its own key named; never a panic.
func FuzzParseJSONKeys(f *testing.F) {
	for _, seed := range []string{
		`{}`, `[]`, `null`, `{"a": "b"}`, `{"a": 1}`, `[{"key": "a", "operator": "Exists"}]`,
		`{"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}}`,
		`{"a": "b", "a": "c"}`, `{"`, `[{"tolerationSeconds": 1e99}]`,
	} {
		f.Add(seed)
	}
	jsonKeys := []string{KeyNodeSelector, KeyAffinity, KeyTolerations, KeyDaemonSetAnnotations}
	f.Fuzz(func(t *testing.T, value string) {
		for _, key := range jsonKeys {
			_, _, err := Parse(with(key, value))
			if err == nil {
				continue
			}
			var cfgErr *Error
			ok := errors.As(err, &cfgErr)
			if !ok {
				t.Fatalf("%s=%q: error %T %v, want *Error", key, value, err, err)
			}
			for _, p := range cfgErr.Problems {
				if p.Key != key {
					t.Fatalf("%s=%q: problem names %s: %v", key, value, p.Key, err)
				}
			}
		}
	})
}
