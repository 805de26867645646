package cri

import "testing"

func TestHas(t *testing.T) {
	refs := map[string]bool{
		"10.88.0.1:5001/ws/java:17":         true,
		"10.88.0.1:5001/ws/java@sha256:abc": true,
		"reg.example.com/ws/node:latest":    true,
	}
	cases := []struct {
		ref  string
		want bool
	}{
		{"10.88.0.1:5001/ws/java:17", true},
		{"10.88.0.1:5001/ws/java@sha256:abc", true},
		{"10.88.0.1:5001/ws/java:18", false},
		{"reg.example.com/ws/node", true}, // no tag means latest
		{"10.88.0.1:5001/ws/java", false},
		{"reg.example.com:5000/ws/node", false}, // a port is not a tag
	}
	for _, tc := range cases {
		if got := Has(refs, tc.ref); got != tc.want {
			t.Errorf("Has(%q) = %v, want %v", tc.ref, got, tc.want)
		}
	}
}
