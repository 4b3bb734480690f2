// Package local is qmail-local: it delivers one message to one local
// address, following the address's .qmail file (spec/delivery.md §4,
// qmail-local(8), dot-qmail(5)).
//
// qmail-lspawn runs it already under the recipient's uid, with the message
// as fd 0 (a seekable regular file at offset 0) and one pipe as fd 1 and
// 2. The report is whatever qmail-local and the programs it runs write
// there; the exit status says what happened: 0 delivered, 100 permanent
// failure (bounce), 111 temporary failure (retry later).
//
// Invariants:
//   - nothing is delivered unless the home and the .qmail file pass the
//     safety checks (not world-writable; a sticky home defers);
//   - the lines of a .qmail file run in order and the first failure stops
//     everything; forwards are queued together after every other line;
//   - addresses never reach a shell command line, only the environment;
//   - a dry run (-n) reads the .qmail file but changes nothing.
package local
