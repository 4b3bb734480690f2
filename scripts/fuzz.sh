#!/bin/sh
# make fuzz: run every fuzz target of the project for a bounded time each
# (FUZZTIME, default 30s). New crashers are written by go test under the
# package's testdata/fuzz/FuzzX/ and replayed by plain `go test` afterwards.
#
# A target that fails without recording a crasher (the fuzzing engine's own
# "context deadline exceeded" at the end of a short -fuzztime, a worker
# killed by the OOM killer) is run once more; it counts as failed only if
# it fails again or a crasher was written.
#
# The minimizer is held to FUZZMINIMIZE (default 10s) per new input: Go's
# default (60s) let a target with long inputs spend most of its time
# minimizing instead of fuzzing (seen with hold FuzzParse: 678 runs in 60s).
set -eu
cd "$(dirname "$0")/.."
t=${FUZZTIME:-30s}
m=${FUZZMINIMIZE:-10s}
status=0
failed=""
ntargets=0
# corpus_count DIR: number of files in DIR (0 if missing).
corpus_count() { if [ -d "$1" ]; then find "$1" -type f | wc -l; else echo 0; fi; }
for pkg in $(go list ./pkg/... ./cmd/... ./test/...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    ntargets=$((ntargets + 1))
    corpus=$dir/testdata/fuzz/$f
    for try in 1 2; do
      before=$(corpus_count "$corpus")
      echo "== $pkg $f ($t)"
      if CGO_ENABLED=1 go test -run='^$' -fuzz="^$f\$" -fuzztime="$t" -fuzzminimizetime="$m" "$pkg"; then
        break
      fi
      if [ "$(corpus_count "$corpus")" -gt "$before" ]; then
        echo "!! $pkg $f: crasher recorded under $corpus"
        status=1; failed="$failed $f"
        break
      fi
      if [ $try = 2 ]; then
        status=1; failed="$failed $f"
      else
        echo "!! $pkg $f failed without a crasher; running it once more"
      fi
    done
  done
done
echo "fuzz: $ntargets targets, ${FUZZTIME:-30s} each; failed:${failed:- none}"
exit $status
