package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// RepoFile is the path of a file of this repository, from its root.
func RepoFile(rel string) string {
	_, here, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(here), "..", "..", "..", rel)
}

// CheClusterCRDEnv names a real CheCluster CRD (che-operator's
// config/crd/bases/org.eclipse.che_checlusters.yaml) to run the tests
// against instead of the project's own minimal fixture. `make test` sets it
// for a second run when hack/real-crds.sh finds that file.
const CheClusterCRDEnv = "KIP_CHECLUSTER_CRD"

// CheClusterCRD is the CheCluster CRD the tests install: the project's own
// minimal fixture (test/fixtures), or the file $KIP_CHECLUSTER_CRD names.
func CheClusterCRD() (string, error) {
	path := os.Getenv(CheClusterCRDEnv)
	if path == "" {
		return RepoFile("test/fixtures/checlusters.org.eclipse.che.yaml"), nil
	}
	if _, err := os.Stat(path); err != nil { //nolint:gosec // G703: the developer names this file
		return "", fmt.Errorf("%s: %w", CheClusterCRDEnv, err)
	}
	return path, nil
}
