#!/bin/sh
# Runs the benchmarks in bench/ against the programs in bin/ (make bench).
# Numbers only: nothing here passes or fails on a timing.
#
#   BENCH_N=2000 BENCH_HELD=5000 BENCH_REPS=3   sizes of bench/compare
#   BENCH_QUICK=1                               smoke test (small N, 1 rep)
#   BENCH_ONLY=hqmail|postfix                   one side of the comparison
#   BENCH_SKIP=compare,queue,rss,remote         sections to leave out
set -e
cd "$(dirname "$0")/.."
skip=",${BENCH_SKIP:-},"

# --- compare (bench/compare): the eight workloads of issue 8, this project
# and a private Postfix instance in the same run, table of medians.
case $skip in *,compare,*) ;; *)
  go build -o bin/.bench-compare ./bench/compare
  ./bin/.bench-compare -bin bin
  rm -f bin/.bench-compare
esac

# --- queue (bench/queue): qmail-queue sequential and parallel vs raw fsync rate
case $skip in *,queue,*) ;; *)
  if [ "${BENCH_QUICK:-}" = 1 ]; then n=200; else n=2000; fi
  go run ./bench/queue -bin bin -n $n -p 8
esac

# --- rss (bench/deliver -mode rss): qmail-send's VmHWM with 100,000 queued
case $skip in *,rss,*) ;; *)
  if [ "${BENCH_QUICK:-}" = 1 ]; then q=5000; else q=100000; fi
  go run ./bench/deliver -bin bin -mode rss -queued $q
esac

# --- remote (bench/remote): qmail-remote runs to a loopback go-smtp sink
case $skip in *,remote,*) ;; *)
  if [ "${BENCH_QUICK:-}" = 1 ]; then n=200; else n=2000; fi
  go run ./bench/remote -bin bin -n $n -c 20
esac
