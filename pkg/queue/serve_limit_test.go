package queue

import (
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/internal/testutil"
	"github.com/hqmail/hqmail/pkg/qq"
)

// pretendLimits makes the service find limit as its descriptor limit, at
// start and whenever it looks again; the test changes it as it runs. Call
// it before starting the service.
func pretendLimits(t *testing.T, limit *atomic.Int64) {
	savedFor, savedNow := nofileFor, nofileNow
	t.Cleanup(func() { nofileFor, nofileNow = savedFor, savedNow })
	nofileFor = func(int64) int64 { return limit.Load() }
	nofileNow = func() int64 { return limit.Load() }
}

// answer sends a request over two fresh pipes and returns the service's
// answer; the connection and the pipes are closed at the end of the test
// (a caller taken holds its slot until then).
func answer(t *testing.T, root string) string {
	t.Helper()
	mr, mw, _ := os.Pipe()
	er, ew, _ := os.Pipe()
	s, a := rawRequest(t, root, "Q1", int(mr.Fd()), int(er.Fd()))
	mr.Close()
	er.Close()
	t.Cleanup(func() {
		mw.Close()
		ew.Close()
		unix.Close(s)
	})
	return a
}

// queueMsg queues one message with qq.Queue: through the service when it
// takes it, else through qmail-queue, which is absent from these trees
// (its exec failure is the result).
func queueMsg(root string) error {
	_, err := qq.Queue(qq.Options{Root: root}, strings.NewReader("x\n"), &qq.Envelope{Sender: "a@b", Recipients: []string{"c@d"}})
	return err
}

// The descriptor limit lowered while the service runs: a new caller is
// refused ("no": it runs qmail-queue and queues its mail), not taken by a
// job that would fail for want of descriptors. Raised again, callers are
// taken again, up to the configured number of jobs and no more. Each
// change of the number of jobs that fit is said once.
func TestServiceLimitLowered(t *testing.T) {
	const maxJobs = 2
	var limit atomic.Int64
	limit.Store(1 << 20)
	pretendLimits(t, &limit)
	root := newRoot(t)
	var log testutil.SyncBuffer
	serviceLog(t, root, maxJobs, &log)
	if err := queueMsg(root); err != nil {
		t.Fatalf("under a large limit: %v", err)
	}
	one := serviceLimits{jobs: 1, closers: refusalClosers, backlog: refusalBacklog}.need()

	// No job fits: every caller is refused, and qq.Queue runs qmail-queue
	// (its exec tried) instead of failing with the service's "qq trouble
	// creating files".
	limit.Store(64)
	for i := range 3 {
		if a := answer(t, root); a != "no" {
			t.Fatalf("caller %d under a limit of 64: answer %q, want no", i+1, a)
		}
	}
	if err := queueMsg(root); err == nil || !strings.Contains(err.Error(), "unable to exec qq") {
		t.Errorf("caller under a limit of 64: %v, want qmail-queue's exec to be tried", err)
	}
	zero := "qmail-queued: warning: descriptor limit now 64: fits 0 jobs at once, not 2: every caller runs qmail-queue\n"
	waitFor(t, func() bool { return strings.Contains(log.String(), zero) })

	// One job fits: the first caller is taken (once the first message's
	// job has given its slot back, which it does just after its result),
	// the second refused.
	limit.Store(one)
	waitFor(t, func() bool { return answer(t, root) == "go" })
	if a := answer(t, root); a != "no" {
		t.Fatalf("second caller under a limit of %d: answer %q, want no", one, a)
	}

	// Raised again: the second slot is free, a third caller is refused
	// however high the limit (the configured jobs are 2).
	limit.Store(1 << 20)
	if a := answer(t, root); a != "go" {
		t.Fatalf("second caller under a raised limit: answer %q, want go", a)
	}
	if a := answer(t, root); a != "no" {
		t.Fatalf("third caller with %d jobs configured: answer %q, want no", maxJobs, a)
	}
	full := "qmail-queued: descriptor limit now " + strconv.Itoa(1<<20) + ": fits 2 jobs at once\n"
	waitFor(t, func() bool { return strings.Contains(log.String(), full) })
	if n := strings.Count(log.String(), zero); n != 1 {
		t.Errorf("the drop to 64 said %d times, want once:\n%s", n, log.String())
	}
	oneLine := "qmail-queued: warning: descriptor limit now " + strconv.FormatInt(one, 10) + ": fits 1 job at once, not 2\n"
	if n := strings.Count(log.String(), oneLine); n != 1 {
		t.Errorf("log %q, want %q once", log.String(), oneLine)
	}
}

// jobsFit counts as fitService does, with the closers and backlog in use.
func TestJobsFit(t *testing.T) {
	full := serviceLimits{jobs: MaxJobs, closers: 4, backlog: 64}
	small := fitService(full, 4096) // 15 jobs, 1 closer, 16 waiting
	for _, tc := range []struct {
		l      serviceLimits
		nofile int64
		want   int
	}{
		{full, 0, MaxJobs},
		{full, -1, MaxJobs},
		{full, full.need(), MaxJobs},
		{full, 1 << 31, MaxJobs},
		{full, full.need() - 1, MaxJobs - 1},
		{full, 64, 0},
		{full, 1024, 0}, // four closers at 254 each leave no room
		{full, serviceLimits{jobs: 1, closers: 4, backlog: 64}.need(), 1},
		{full, serviceLimits{jobs: 1, closers: 4, backlog: 64}.need() - 1, 0},
		{small, 4096, 15},
		{small, 1 << 20, 15}, // never more than fitted at start
		{small, 2048, 6},
	} {
		if got := jobsFit(tc.l, tc.nofile); got != tc.want {
			t.Errorf("jobsFit(%v, %d) = %d, want %d", tc.l, tc.nofile, got, tc.want)
		}
	}
	// Under the limit it was fitted to, the start's limits fit as many
	// jobs as fitService gave them.
	for n := int64(1); n <= full.need()+10; n += 7 {
		l := fitService(full, n)
		if got := jobsFit(l, n); got != l.jobs {
			t.Fatalf("nofile %d: jobsFit(%v) = %d, want %d", n, l, got, l.jobs)
		}
	}
}
