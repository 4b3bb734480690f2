package queue

import (
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// readResult is what one pollReader.Read returned.
type readResult struct {
	n   int
	err error
}

// A caller may keep its own copy of the message pipe's read end and read
// it too (QA: a thread blocked in read(2), a byte written at a time): each
// byte wakes the job's poll and the caller's read, and when the caller
// takes it, the job's read must not wait for the next byte, or neither
// the hang-up of the connection nor the deadline is looked at for as long
// as the write end lives. Each round, a new reader (a job) polls the pipe
// the test keeps reading; a byte is written; when the test's reader took
// it, the job is told to stop (its connection hung up, or its deadline
// passed) and its Read must return. Both ways of not waiting are tried:
// RWF_NOWAIT, and O_NONBLOCK for kernels or descriptors without it.
func TestPollReaderSharedPipe(t *testing.T) {
	for _, tc := range []struct {
		name   string
		noWait bool
	}{{"RWF_NOWAIT", true}, {"O_NONBLOCK", false}} {
		t.Run(tc.name, func(t *testing.T) {
			old := tryNoWait
			tryNoWait = tc.noWait
			t.Cleanup(func() { tryNoWait = old })
			sharedPipeRounds(t)
		})
	}
}

func sharedPipeRounds(t *testing.T) {
	// A pipe as a caller makes it (blocking, as Python's os.pipe or
	// qq's client passes it), not os.Pipe, which sets O_NONBLOCK.
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	rfd, wfd := p[0], p[1]
	// The caller's reader: a thread blocked in read(2) on the same open
	// file description as the job's (as SCM_RIGHTS passes it), polling
	// when that description has been made non-blocking.
	stolen := make(chan byte, 1)
	callerDone := make(chan struct{})
	go func() {
		defer close(callerDone)
		runtime.LockOSThread()
		b := make([]byte, 1)
		for {
			n, err := unix.Read(rfd, b)
			switch {
			case err == unix.EINTR:
			case err == unix.EAGAIN:
				unix.Poll([]unix.PollFd{{Fd: int32(rfd), Events: unix.POLLIN}}, 100)
			case err != nil || n == 0:
				return
			default:
				stolen <- b[0]
			}
		}
	}()
	var jobs []chan struct{} // closed as each job's Read returns
	t.Cleanup(func() {
		// The end of file lets every reader go, a job's read blocked
		// in read(2) (without the fix) too.
		unix.Close(wfd)
		deadline := time.Now().Add(10 * time.Second)
		select {
		case <-callerDone:
		case <-time.After(time.Until(deadline)):
			t.Error("the caller's reader still reads after the end of file")
		}
		for _, ended := range jobs {
			select {
			case <-ended:
			case <-time.After(time.Until(deadline)):
				t.Error("a job's Read still runs after the end of file")
			}
		}
		unix.Close(rfd)
	})
	const wantStolen = 12
	took, lost := 0, 0
	for round := 0; round < 400 && lost < wantStolen; round++ {
		sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		conn, peer := sp[0], sp[1]
		byDeadline := lost%2 == 1 // else by the hang-up
		deadline := time.Now().Add(time.Hour)
		if byDeadline {
			deadline = time.Now().Add(time.Second)
		}
		r := &pollReader{fd: rfd, conn: conn, deadline: deadline}
		done := make(chan readResult, 1)
		ended := make(chan struct{})
		jobs = append(jobs, ended)
		go func() {
			defer close(ended)
			b := make([]byte, 1)
			n, err := r.Read(b)
			done <- readResult{n, err}
		}()
		// Let the job reach its poll (it may not have: the round is then
		// only less of a test).
		time.Sleep(2 * time.Millisecond)
		if _, err := unix.Write(wfd, []byte{'x'}); err != nil {
			t.Fatal(err)
		}
		select {
		case res := <-done:
			if byDeadline && res.err == errDeadline {
				// A slow machine: the deadline came before the
				// byte. The caller's reader takes it.
				select {
				case <-stolen:
				case <-time.After(10 * time.Second):
					t.Fatalf("round %d: nobody read the byte in 10 s", round)
				}
				break
			}
			if res.err != nil || res.n != 1 {
				t.Fatalf("round %d: Read = %d, %v; want the byte", round, res.n, res.err)
			}
			took++
		case <-stolen:
			lost++
			want := errGone
			if byDeadline {
				want = errDeadline
			} else {
				unix.Close(peer) // the caller hangs up
				peer = -1
			}
			select {
			case res := <-done:
				if res.err != want {
					t.Fatalf("round %d: Read = %d, %v; want %v", round, res.n, res.err, want)
				}
			case <-time.After(15 * time.Second):
				t.Fatalf("round %d: the job's Read still waits 15 s after it should have ended (%v): blocked in read(2) after the caller took the byte", round, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: nobody read the byte in 10 s", round)
		}
		if peer >= 0 {
			unix.Close(peer)
		}
		unix.Close(conn)
	}
	t.Logf("job took %d bytes, the caller %d", took, lost)
	if lost == 0 {
		t.Skip("the caller's reader never took a byte: nothing tested")
	}
}
