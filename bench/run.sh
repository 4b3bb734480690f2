#!/bin/sh
# Runs the benchmarks in bench/ against the programs in bin/ (make bench).
# Numbers only: nothing here passes or fails on a timing.
set -e
cd "$(dirname "$0")/.."

# --- queue (bench/queue): qmail-queue sequential and parallel vs raw fsync rate
go run ./bench/queue -bin bin -n 2000 -p 8
