package agent

import (
	"context"
	"os"
	"path/filepath"
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

// TestMountedPullSecretsFollowRotation: the kubelet rewrites a mounted
// Secret in place; the next lookup uses the new login, with no restart,
// and a secret that turns bad is named, then cleared once it is fixed.
func TestMountedPullSecretsFollowRotation(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, corev1.DockerConfigJsonKey), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	login := func(password string) string {
		return `{"auths": {"r.test": {"username": "u", "password": "` + password + `"}}}`
	}
	write("regcred", login("first"))
	var changes [][]string
	m := &MountedPullSecrets{Dir: dir, Names: []string{"regcred"}, Changed: func(p []string) { changes = append(changes, p) }}

	steps := []struct {
		name, content string // written before the lookup; "" writes nothing
		password      string // the login the lookup must find; "" none
		problems      int
		changes       int
	}{
		{"first read", "", "first", 0, 1},
		{"unchanged: not rebuilt", "", "first", 0, 1},
		{"rotated", login("second"), "second", 0, 2},
		{"turned bad", "{not json", "", 1, 3},
		{"fixed", login("third"), "third", 0, 4},
	}
	for _, s := range steps {
		if s.content != "" {
			write("regcred", s.content)
		}
		c, err := m.Credentials("r.test/app:v1")
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		switch {
		case s.password == "" && c != nil:
			t.Errorf("%s: got a login %+v, want none", s.name, c)
		case s.password != "" && (c == nil || c.Password != s.password):
			t.Errorf("%s: got %+v, want password %q", s.name, c, s.password)
		}
		if p := m.Problems(); len(p) != s.problems {
			t.Errorf("%s: problems %v, want %d", s.name, p, s.problems)
		}
		if len(changes) != s.changes {
			t.Errorf("%s: %d changes heard, want %d", s.name, len(changes), s.changes)
		}
	}
}
