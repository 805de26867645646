package agent

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kip-image-puller/kip/internal/registry"
)

func TestKeychainCredentialsGoOnlyToTheirRegistry(t *testing.T) {
	secret := func(name, registryHost, user string) corev1.Secret {
		return corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Type:       corev1.SecretTypeDockerConfigJson,
			Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(
				`{"auths": {"` + registryHost + `": {"username": "` + user + `", "password": "secret-` + user + `"}}}`)},
		}
	}
	bad := corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "broken"}, Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte("{not json")}}
	kc, problems := registry.Keychain(context.Background(), []corev1.Secret{secret("a", "a.test", "alice"), bad, secret("b", "b.test:5000", "bob")})
	if problems["broken"] == nil || len(problems) != 1 {
		t.Errorf("problems %v, want the broken secret named", problems)
	}
	creds := KeychainCredentials(kc)
	for ref, want := range map[string]string{
		"a.test/app:v1":      "alice",
		"b.test:5000/app:v1": "bob",
		"b.test/app:v1":      "", // another port is another registry
		"c.test/app:v1":      "",
	} {
		c, err := creds(ref)
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		switch {
		case want == "" && c != nil:
			t.Errorf("%s got %s's login", ref, c.Username)
		case want != "" && (c == nil || c.Username != want || c.Password != "secret-"+want):
			t.Errorf("%s: %+v, want %s's login", ref, c, want)
		}
	}
	if _, err := creds("Not A Reference"); err == nil {
		t.Error("no error for an invalid reference")
	}
}
