// Package spawn is the driver shared by qmail-lspawn and qmail-rspawn
// (spec/delivery.md §1, the spawner side of scheduler.md §9): it reads
// requests from qmail-send, checks them, starts one delivery per request,
// collects the delivery's output (fd 1 and 2 on one pipe) and exit status,
// and writes one report per request once the delivery program has exited
// and its output pipe has reached end of file.
//
// The two spawners supply only a Spawner: how to run one delivery, and how
// to turn its exit status and output into a report. Everything else
// (request checks, slots, the message file, the announcement, the output
// pipe, the 3000-byte cut of qmail-lspawn) lives here.
//
// Limits: qmail-lspawn announces qmail's 120 in one byte (usable by
// qmail's qmail-send too); qmail-rspawn announces RemoteLimit (500) in the
// wide form of pkg/spawnproto (a NUL, then two bytes), after which slots
// are two bytes each way. Main raises the soft RLIMIT_NOFILE to fit the
// limit (7 descriptors a delivery plus 96) and, if the hard limit is too
// low, announces the number of slots that fits instead.
//
// Invariants:
//   - At most Config.Limit deliveries run at once (the announced limit:
//     one per slot); a request for a busy or out-of-range slot is
//     answered at once without a delivery.
//   - The message is opened relative to the working directory (queue/mess),
//     without following the caller into a FIFO, and must be a regular file
//     owned by qmailq (Config.Owner) before any program sees it.
//   - Exactly one report per request, in the order deliveries finish.
//   - Run returns when the input is at end of file and no delivery is left.
//   - A write to a closed report pipe fails with EPIPE instead of killing the
//     spawner (Main catches SIGPIPE; children get the default disposition).
package spawn
