package main

import "testing"

func TestSoftMemoryLimit(t *testing.T) {
	tests := map[string]int64{
		"268435456\n": 241591910, // 256Mi -> 90%
		"max\n":       0,
		"":            0,
		"-1":          0,
	}
	for in, want := range tests {
		if got := softMemoryLimit(in); got != want {
			t.Errorf("softMemoryLimit(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestGCPercent(t *testing.T) {
	if p, ok := gcPercent(""); !ok || p != 50 {
		t.Errorf("GOGC unset: %d, %v; want 50, true", p, ok)
	}
	for _, gogc := range []string{"100", "off"} {
		if _, ok := gcPercent(gogc); ok {
			t.Errorf("GOGC=%s: overridden", gogc)
		}
	}
}
