#!/bin/sh
# ab.sh REV PKG BENCH [ROUNDS]: a Go benchmark of this checkout against the
# same benchmark at git revision REV, alternating (old, new) ROUNDS times
# (default 4) in one run on one machine, so that the two sides share its
# noise. Prints each round's ns/op and the median ratio new/old.
#   sh bench/ab.sh 81b27f5 ./pkg/smtpd BenchmarkMessage
# Numbers only; nothing is asserted.
set -eu
rev=$1 pkg=$2 bench=$3 rounds=${4:-4}
top=$(git rev-parse --show-toplevel)
old=$(mktemp -d "${TMPDIR:-/tmp}/hqmail-ab.XXXXXX")
trap 'git -C "$top" worktree remove --force "$old" >/dev/null 2>&1; rm -rf "$old"' EXIT
git -C "$top" worktree add --detach "$old" "$rev" >/dev/null 2>&1
run() { (cd "$1" && go test -run '^$' -bench "^$bench\$" -benchtime 2s -count 1 "$pkg" | awk '/ns\/op/ {print $3}'); }
: >"$old.o"; : >"$old.n"
i=0
while [ $i -lt "$rounds" ]; do
  o=$(run "$old"); n=$(run "$top")
  echo "round $((i+1)): old $o ns/op, new $n ns/op"
  echo "$o" >>"$old.o"; echo "$n" >>"$old.n"
  i=$((i+1))
done
paste "$old.o" "$old.n" | awk '{print $2/$1}' | sort -n |
  awk '{r[NR]=$1} END {m=(NR%2)?r[(NR+1)/2]:(r[NR/2]+r[NR/2+1])/2; printf "median new/old: %.3f (above 1: new slower)\n", m}'
rm -f "$old.o" "$old.n"
