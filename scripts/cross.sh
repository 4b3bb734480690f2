#!/bin/sh
# cross.sh: what make test checks beyond this machine's own architecture.
# Every package and test must compile for the 32-bit and big-endian Linux
# architectures small machines run (arm, mips64; go vet compiles the tests
# too), and the unit tests run as 386, which an amd64 kernel runs
# natively: there int has 32 bits, as on a 32-bit ARM board.
set -u
GO=${GO:-go}
for arch in arm mips64; do
  echo "go vet for GOARCH=$arch"
  GOARCH=$arch CGO_ENABLED=0 "$GO" vet ./... || exit 1
done
probe=$(mktemp -d "${TMPDIR:-/tmp}/hqmail-cross.XXXXXX") || exit 111
trap 'rm -rf "$probe"' EXIT
printf 'package main\nfunc main() {}\n' >"$probe/main.go"
if ! (cd "$probe" && GOARCH=386 CGO_ENABLED=0 "$GO" build -o probe main.go 2>/dev/null && ./probe); then
  echo "SKIP unit tests as 386: this kernel does not run 32-bit x86 programs"
  exit 0
fi
echo "unit tests as GOARCH=386"
GOARCH=386 CGO_ENABLED=0 GO="$GO" sh scripts/gotest.sh -count=1 ./pkg/... ./cmd/...
