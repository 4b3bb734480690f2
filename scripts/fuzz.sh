#!/bin/sh
# make fuzz: run every fuzz target of the project for a bounded time each
# (FUZZTIME, default 30s). New crashers are written by go test under the
# package's testdata/fuzz/FuzzX/ and replayed by plain `go test` afterwards.
set -eu
cd "$(dirname "$0")/.."
t=${FUZZTIME:-30s}
status=0
for pkg in $(go list ./pkg/... ./cmd/...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "== $pkg $f ($t)"
    CGO_ENABLED=1 go test -run='^$' -fuzz="^$f\$" -fuzztime="$t" "$pkg" || status=1
  done
done
exit $status
