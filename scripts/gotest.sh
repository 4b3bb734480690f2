#!/bin/sh
# gotest.sh ARGS...: go test -v ARGS, showing the package results and every
# skipped test with its reason; on failure the whole output, so that
# nothing of a failure is hidden, then the failed tests' lines again at
# its end. The exit code is go test's.
set -u
GO=${GO:-go}
log=$(mktemp "${TMPDIR:-/tmp}/hqmail-gotest.XXXXXX") || exit 111
trap 'rm -f "$log"' EXIT
"$GO" test -v "$@" >"$log" 2>&1
rc=$?
if [ "$rc" -ne 0 ]; then
  cat "$log"
  # The whole output can be too long to read from its end (CI keeps only
  # the last lines): repeat each failed test's lines, its "--- FAIL" line,
  # and any panic or timeout, last.
  echo
  echo "gotest: the failures again, from the output above:"
  awk '
    /^=== RUN / { cur = $3; buf[cur] = ""; next }
    /^=== (CONT|NAME|PAUSE)/ { cur = $3; next }
    /^ *--- FAIL:/ { printf "%s", buf[$3]; print; buf[$3] = ""; next }
    /^ *--- (PASS|SKIP)/ { buf[$3] = ""; next }
    /^    / { buf[cur] = buf[cur] $0 "\n"; next }
    /^(panic:|fatal error:|FAIL|\*\*\* Test killed)/ { print; next }
  ' "$log"
  exit "$rc"
fi
# go test -v streams each test's log lines (a skip's reason among them)
# under a header naming the test: "=== RUN", or "=== CONT", "=== NAME" and
# "=== PAUSE" when the output moves from one test to another (parallel
# tests, subtests, a parent's lines after its subtests), or a benchmark's
# bare name. The lines are kept per test and shown below its "--- SKIP"
# line, which for a subtest comes later among its parent's results, after
# other tests ran. Output that was not streamed (a benchmark's, or go
# test without -v) puts a skip's reason below its "--- SKIP" line,
# indented deeper: those lines are shown too.
awk '
  function indent(s) { match(s, /^ */); return RLENGTH }
  BEGIN { after = -1 }
  after >= 0 {
    if ($0 !~ /^ *(---|===) / && $0 ~ /[^ ]/ && indent($0) > after) {
      print substr($0, after + 1); next
    }
    after = -1
  }
  /^=== RUN / { cur = $3; buf[cur] = ""; next }
  /^=== (CONT|NAME|PAUSE)/ { cur = $3; next }
  /^Benchmark[^ ]*$/ { cur = $1; buf[cur] = ""; next }
  /^ *--- SKIP:/ {
    after = indent($0); print substr($0, after + 1)
    printf "%s", buf[$3]; buf[$3] = ""; next
  }
  /^ *--- (PASS|FAIL)/ { buf[$3] = ""; next }
  /^    / { buf[cur] = buf[cur] $0 "\n"; next }
  /^(ok|FAIL|\?) / { print; split("", buf); cur = ""; next }
' "$log"
n=$(grep -c -- '--- SKIP:' "$log")
echo "($n skipped tests; reasons above)"
exit 0
