#!/usr/bin/env bash
# Mutation testing of the pure packages with gremlins (pinned in
# hack/tools/gremlins/go.mod). Prints, per package, killed / lived / not
# covered, gremlins' efficacy (killed / (killed + lived)) and mutator
# coverage ((killed + lived) / all), then every mutant that survived or that
# no test reaches. Exits 1 when a package is under the targets.
#
#   hack/mutate.sh [PACKAGE ...]     default: the pure packages below
# Environment: MUTATE_EFFICACY (85), MUTATE_COVERAGE (80)
set -euo pipefail
cd "$(dirname "$0")/.."
EFFICACY=${MUTATE_EFFICACY:-85}
COVERAGE=${MUTATE_COVERAGE:-80}
pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || pkgs=(config daemonset status operator images ssa manifest observe predicates parallel nodewarm agent/report)

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
fail=0
rows=()
for p in "${pkgs[@]}"; do
  log="$out/${p//\//-}.log"
  # Each mutant recompiles the tests: give that room, or mutants time out
  # instead of being killed or surviving (at 20x, one internal/images
  # mutant that is killed in every other run timed out once in CI).
  # observe.go is the client edge, tested against a real API server; the
  # pure rules of observe are in its other files.
  go tool -modfile=hack/tools/gremlins/go.mod gremlins unleash --timeout-coefficient 40 \
    --exclude-files '(^|/)observe\.go$' "./internal/$p" >"$log" 2>&1 || true
  killed=$(sed -n 's/.*Killed: \([0-9]*\), Lived: \([0-9]*\), Not covered: \([0-9]*\).*/\1/p' "$log")
  lived=$(sed -n 's/.*Killed: \([0-9]*\), Lived: \([0-9]*\), Not covered: \([0-9]*\).*/\2/p' "$log")
  uncovered=$(sed -n 's/.*Killed: \([0-9]*\), Lived: \([0-9]*\), Not covered: \([0-9]*\).*/\3/p' "$log")
  if grep -q "No results to report" "$log"; then
    rows+=("internal/$p|no mutants|-|-|ok")
    continue
  fi
  if [ -z "$killed" ]; then
    echo "mutate: gremlins gave no result for internal/$p:" >&2
    cat "$log" >&2
    exit 2
  fi
  timedout=$(sed -n 's/.*Timed out: \([0-9]*\),.*/\1/p' "$log")
  total=$((killed + lived + uncovered))
  eff=$(awk -v k="$killed" -v l="$lived" 'BEGIN { printf "%.1f", (k + l) ? 100 * k / (k + l) : 100 }')
  cov=$(awk -v k="$killed" -v l="$lived" -v t="$total" 'BEGIN { printf "%.1f", t ? 100 * (k + l) / t : 100 }')
  verdict=ok
  if awk -v e="$eff" -v c="$cov" -v te="$EFFICACY" -v tc="$COVERAGE" 'BEGIN { exit !(e < te || c < tc) }'; then
    verdict=BELOW
    fail=1
  fi
  if [ "${timedout:-0}" -gt 0 ]; then
    verdict="$verdict ($timedout timed out)"
    fail=1
  fi
  rows+=("internal/$p|$killed / $lived / $uncovered|$eff%|$cov%|$verdict")
  grep -E '^ *(LIVED|NOT COVERED) ' "$log" | sed "s#^ *#  internal/$p: #" >"${log%.log}.survivors" || true
done

echo
echo "Mutation testing (gremlins), targets: efficacy >= $EFFICACY%, mutator coverage >= $COVERAGE%"
{
  echo "PACKAGE|KILLED / LIVED / NOT COVERED|EFFICACY|MUTATOR COVERAGE|"
  printf '%s\n' "${rows[@]}"
} | column -t -s '|'
if cat "$out"/*.survivors 2>/dev/null | grep -q .; then
  echo
  echo "Survivors and mutants no test reaches:"
  cat "$out"/*.survivors
fi
exit $fail
