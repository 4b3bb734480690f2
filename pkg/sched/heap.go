package sched

import "container/heap"

// entry is one message on a schedule: 16 bytes per queued message and
// channel, the only per-message state qmail-send keeps between passes.
type entry struct {
	id  uint64
	due int64
}

// entries is a min-heap of entries ordered by due time.
type entries []entry

func (h entries) Len() int           { return len(h) }
func (h entries) Less(i, j int) bool { return h[i].due < h[j].due }
func (h entries) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *entries) Push(x any)        { *h = append(*h, x.(entry)) }
func (h *entries) Pop() any {
	old := *h
	n := len(old)
	e := old[n-1]
	*h = old[:n-1]
	return e
}

// prioq wraps a heap of entries.
type prioq struct{ h entries }

func (q *prioq) insert(id uint64, due int64) { heap.Push(&q.h, entry{id, due}) }

// min returns the earliest entry.
func (q *prioq) min() (entry, bool) {
	if len(q.h) == 0 {
		return entry{}, false
	}
	return q.h[0], true
}

func (q *prioq) delmin() entry { return heap.Pop(&q.h).(entry) }

func (q *prioq) len() int { return len(q.h) }

// allDue sets every due time to t (ALRM, hold release); the heap order is
// unchanged since all keys become equal.
func (q *prioq) allDue(t int64) {
	for i := range q.h {
		q.h[i].due = t
	}
}

// shrink releases the memory of a heap that emptied after growing large.
func (q *prioq) shrink() {
	if len(q.h) == 0 && cap(q.h) > 1024 {
		q.h = nil
	}
}
