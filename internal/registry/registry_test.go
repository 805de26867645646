package registry

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
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

	withSecret, problems := Keychain(ctx, []corev1.Secret{*registrytest.PullSecret("", "", private, "dev", "s3cret")})
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	wrongSecret, problems := Keychain(ctx, []corev1.Secret{*registrytest.PullSecret("", "", private, "dev", "wrong")})
	if len(problems) > 0 {
		t.Fatal(problems)
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

// TestKeychainIsolatesBadSecrets: a malformed secret, or one that is not a
// pull secret, is named, and the good one still reaches its registry.
func TestKeychainIsolatesBadSecrets(t *testing.T) {
	ctx := context.Background()
	private := registrytest.Serve(t, "dev", "s3cret")
	ref := private + "/ws/node:22"
	digest := registrytest.Push(t, ref, &authn.Basic{Username: "dev", Password: "s3cret"})

	malformed := corev1.Secret{Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte("{not json")}}
	malformed.Name = "malformed"
	opaque := corev1.Secret{Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"password": []byte("x")}}
	opaque.Name = "opaque"
	empty := corev1.Secret{Type: corev1.SecretTypeDockercfg}
	empty.Name = "empty"
	good := registrytest.PullSecret("", "good", private, "dev", "s3cret")

	kc, problems := Keychain(ctx, []corev1.Secret{malformed, opaque, *good, empty})
	for _, name := range []string{"malformed", "opaque", "empty"} {
		if problems[name] == nil {
			t.Errorf("secret %s: no problem reported", name)
		}
	}
	if len(problems) != 3 || problems["good"] != nil {
		t.Errorf("problems %v, want exactly malformed, opaque and empty", problems)
	}
	for name, err := range problems {
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: the problem reveals a secret value: %v", name, err)
		}
	}
	res := Resolver{Timeout: 5 * time.Second}.Resolve(ctx, []string{ref}, kc)[ref]
	if res.Err != nil || res.Digest != digest {
		t.Errorf("with one good secret among bad ones: %+v, want %s", res, digest)
	}
}

// TestErrorsKeepNoRegistryBody: what a registry answers goes into Events and
// logs as its status and error codes, never as the body it sent.
func TestErrorsKeepNoRegistryBody(t *testing.T) {
	body := "<html>\n<pre>panic: token=abcdef0123 leaked\n" + strings.Repeat("stack frame\n", 2000) + "</pre></html>"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v2/":
			w.WriteHeader(http.StatusOK)
		case strings.Contains(r.URL.Path, "/coded/"):
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown\n%s"}]}`, strings.Repeat("x", 1000))
		default:
			w.WriteHeader(http.StatusForbidden) // not a status go-containerregistry retries
			fmt.Fprint(w, body)
		}
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	kc, _ := Keychain(context.Background(), nil)
	r := Resolver{Timeout: 5 * time.Second, Transport: registrytest.LoopbackOnly()}
	for ref, want := range map[string]string{
		host + "/raw/image:1":   "HTTP 403 Forbidden",
		host + "/coded/image:1": "HTTP 404 Not Found: MANIFEST_UNKNOWN: manifest unknown",
	} {
		res := r.Resolve(context.Background(), []string{ref}, kc)[ref]
		if res.Err == nil {
			t.Fatalf("%s resolved: %+v", ref, res)
		}
		msg := res.Err.Error()
		if !strings.HasPrefix(msg, want) || len(msg) > maxExcerpt+len(want) || strings.ContainsAny(msg, "\n<") || strings.Contains(msg, "token=") {
			t.Errorf("%s: error %.300q; want it to start with %q, on one line, short, without the body", ref, msg, want)
		}
	}
}
