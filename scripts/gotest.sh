#!/bin/sh
# gotest.sh ARGS...: go test -v ARGS, showing the package results and every
# skipped test with its reason; on failure the whole output, so that
# nothing of a failure is hidden. The exit code is go test's.
set -u
GO=${GO:-go}
log=$(mktemp "${TMPDIR:-/tmp}/hqmail-gotest.XXXXXX") || exit 111
trap 'rm -f "$log"' EXIT
"$GO" test -v "$@" >"$log" 2>&1
rc=$?
if [ "$rc" -ne 0 ]; then
  cat "$log"
  exit "$rc"
fi
# A test's log lines (a skip's reason among them) come between its
# "=== RUN" and its "--- SKIP" line.
awk '
  /^=== (RUN|CONT|PAUSE|NAME)/ { why = ""; next }
  /^ *--- SKIP:/ { sub(/^ */, ""); print; if (why != "") printf "%s", why; why = ""; next }
  /^ *--- (PASS|FAIL)/ { why = ""; next }
  /^    / { why = why $0 "\n"; next }
  /^(ok|FAIL|\?) / { print }
' "$log"
n=$(grep -c -- '--- SKIP:' "$log")
echo "($n skipped tests; reasons above)"
exit 0
