package registry

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
)

// serve starts a real OCI registry on loopback, behind basic auth when user is set.
func serve(t *testing.T, user, password string) string {
	t.Helper()
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if user != "" {
		inner := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != user || p != password {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			inner.ServeHTTP(w, r)
		})
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func push(t *testing.T, ref string, auth authn.Authenticator) string {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, remote.WithAuth(auth)); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func pullSecret(host, user, password string) corev1.Secret {
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	cfg := fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, host, auth)
	return corev1.Secret{
		Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(cfg)},
	}
}

func TestResolve(t *testing.T) {
	ctx := context.Background()
	open := serve(t, "", "")
	private := serve(t, "dev", "s3cret")

	openRef := open + "/ws/java:17"
	openDigest := push(t, openRef, authn.Anonymous)
	privateRef := private + "/ws/node:22"
	privateDigest := push(t, privateRef, &authn.Basic{Username: "dev", Password: "s3cret"})

	withSecret, err := Keychain(ctx, []corev1.Secret{pullSecret(private, "dev", "s3cret")})
	if err != nil {
		t.Fatal(err)
	}
	wrongSecret, err := Keychain(ctx, []corev1.Secret{pullSecret(private, "dev", "wrong")})
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
	host := serve(t, "", "")
	want := map[string]string{}
	var refs []string
	for i := 0; i < 9; i++ {
		ref := fmt.Sprintf("%s/ws/img%d:latest", host, i)
		want[ref] = push(t, ref, authn.Anonymous)
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
