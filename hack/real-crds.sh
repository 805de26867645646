#!/usr/bin/env bash
# Prints the path of a real CRD published by another project, for a second
# run of the tests that install such a CRD, or nothing when there is none.
# It looks in shared/testdata beside the repository or beside any of its
# parent folders (a workspace may keep the ecosystem's files there); a
# user's clone has none, and every test passes with the project's own
# fixtures (test/fixtures) alone.
#
#   hack/real-crds.sh FILE      e.g. org.eclipse.che_checlusters.yaml
set -euo pipefail
file=${1:?usage: $0 FILE}
dir=$(cd "$(dirname "$0")/.." && pwd)
while [ "$dir" != / ]; do
  dir=$(dirname "$dir")
  if [ -f "$dir/shared/testdata/$file" ]; then
    echo "$dir/shared/testdata/$file"
    exit 0
  fi
done
