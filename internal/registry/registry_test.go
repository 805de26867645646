package registry

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"

	"github.com/kip-image-puller/kip/internal/dev/registrytest"
)

func TestResolve(t *testing.T) {
	ctx := context.Background()
	open := registrytest.Serve(t, "", "")
	private := registrytest.Serve(t, "dev", "s3cret")

	openRef := open + "/ws/java:17"
	openDigest := registrytest.Push(t, openRef, authn.Anonymous)
	privateRef := private + "/ws/node:22"
	privateDigest := registrytest.Push(t, privateRef, &authn.Basic{Username: "dev", Password: "s3cret"})

	withSecret, err := Keychain(ctx, []corev1.Secret{*registrytest.PullSecret("", "", private, "dev", "s3cret")})
	if err != nil {
		t.Fatal(err)
	}
	wrongSecret, err := Keychain(ctx, []corev1.Secret{*registrytest.PullSecret("", "", private, "dev", "wrong")})
	if err != nil {
		t.Fatal(err)
	}
	anonymous, _ := Keychain(ctx, nil)

	cases := []struct {
		name       string
		ref        string
		kc         authn.Keychain
		wantDigest string
		wantErr    string
	}{
		{"open registry", openRef, anonymous, openDigest, ""},
		{"private registry with its pull secret", privateRef, withSecret, privateDigest, ""},
		{"private registry without credentials", privateRef, anonymous, "", "401"},
		{"private registry with wrong credentials", privateRef, wrongSecret, "", "401"},
		{"unknown tag", open + "/ws/java:missing", anonymous, "", "MANIFEST_UNKNOWN"},
		{"unreachable registry", "127.0.0.1:1/ws/java:17", anonymous, "", "connection refused"},
	}
	r := Resolver{Timeout: 5 * time.Second, Parallel: 2}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := r.Resolve(ctx, []string{tc.ref}, tc.kc)[tc.ref]
			if tc.wantErr != "" {
				if res.Err == nil || !strings.Contains(res.Err.Error(), tc.wantErr) {
					t.Fatalf("result %+v, want an error containing %q", res, tc.wantErr)
				}
				if strings.Contains(res.Err.Error(), "s3cret") || strings.Contains(res.Err.Error(), "wrong") {
					t.Errorf("error reveals a password: %v", res.Err)
				}
				return
			}
			if res.Err != nil || res.Digest != tc.wantDigest {
				t.Fatalf("result %+v, want digest %s", res, tc.wantDigest)
			}
		})
	}
}

func TestResolveMany(t *testing.T) {
	host := registrytest.Serve(t, "", "")
	want := map[string]string{}
	var refs []string
	for i := 0; i < 9; i++ {
		ref := fmt.Sprintf("%s/ws/img%d:latest", host, i)
		want[ref] = registrytest.Push(t, ref, authn.Anonymous)
		refs = append(refs, ref)
	}
	kc, _ := Keychain(context.Background(), nil)
	got := Resolver{Timeout: 5 * time.Second, Parallel: 3}.Resolve(context.Background(), refs, kc)
	if len(got) != len(want) {
		t.Fatalf("%d results, want %d", len(got), len(want))
	}
	for ref, d := range want {
		if got[ref].Digest != d {
			t.Errorf("%s: %+v, want %s", ref, got[ref], d)
		}
	}
}
