// Package sched is qmail-send, the scheduler (spec/scheduler.md, queue.md
// §5-7), with hold flags (scheduler.md §13).
//
// One goroutine (the loop in loop.go) owns all scheduler state: schedules,
// jobs, delivery slots, passes. Other goroutines only move bytes: one per
// spawner reads reports, one per spawner writes requests (so a slow spawner
// never blocks the loop; at most one request per channel is in flight, as
// in qmail), one watches the trigger FIFO and one forwards signals. They
// all feed a single event channel. qmail-clean is spoken to synchronously,
// as qmail does.
//
// Per queued message the scheduler keeps one heap entry (id, due time: 16
// bytes) per channel; channel files are read only by the current pass.
//
// Files:
//
//	config.go   control files and hold-flag parsing
//	rewrite.go  recipient rewriting (locals, percenthack, virtualdomains), VERP
//	log.go      log lines and the "safe" transformation
//	heap.go     the (id, due) min-heaps
//	loop.go     startup, event loop, wake-up computation, TERM
//	todo.go     todo/ preprocessing and the info/ scan
//	pass.go     passes, deliveries, reports, job release
//	done.go     message completion, bounce/ID appending and injection
//	bounce.go   bounce message text (QSBMF, RFC 3464)
//	cleanup.go  stale-message walk, due times written back at exit
//	hold.go     hold flags: HUP/ALRM handling, hold periods, sendstatus
package sched
