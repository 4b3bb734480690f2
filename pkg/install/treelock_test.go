package install

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestConcurrentInstalls: two runs on one tree at once, on a new tree
// and then on an installed one, both succeed and leave a tree -check
// finds nothing in. Each removed the other's temporary ".NAME.new" as a
// leftover, and its rename failed ("unable to rename .ids.new to
// R/etc/ids: no such file or directory") or put the other's half-written
// file in place (QA rnonroot2): now the second waits for the first's
// lock on the root.
func TestConcurrentInstalls(t *testing.T) {
	root := filepath.Join(searchableDir(t), "q")
	src := fakeSource(t)
	for round := 0; round < 10; round++ {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		logs := make([]bytes.Buffer, 2)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				o := optsFrom(root, src)
				o.Log = &logs[i]
				errs[i] = Install(o)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d, run %d: %v (log %q)", round, i, err, logs[i].String())
			}
		}
		if dev, err := Check(root); err != nil || len(dev) != 0 {
			t.Fatalf("round %d: check: %v %v", round, dev, err)
		}
	}
}

// logLines returns a writer and a channel of the lines written to it, for a
// run's log read while it runs; stop closes the writer once the run
// ended.
func logLines(t *testing.T) (w *os.File, ch <-chan string, stop func()) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	c := make(chan string, 100)
	go func() {
		defer r.Close()
		defer close(c)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			c <- sc.Text()
		}
	}()
	return w, c, func() { w.Close() }
}

// waitLine waits (bounded) for the line want on ch; other lines are
// logged.
func waitLine(t *testing.T, ch <-chan string, want string) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-ch:
			if !ok {
				t.Fatalf("log ended without %q", want)
			}
			if l == want {
				return
			}
			t.Logf("log: %s", l)
		case <-timeout:
			t.Fatalf("no %q within 30s", want)
		}
	}
}

// TestInstallWaitsForTreeLock: while another holds the flock on the
// tree's root, a run says it waits, and goes on once it is released.
func TestInstallWaitsForTreeLock(t *testing.T) {
	root := filepath.Join(searchableDir(t), "q")
	src := fakeSource(t)
	if err := Install(optsFrom(root, src)); err != nil {
		t.Fatal(err)
	}
	held, err := os.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := unix.Flock(int(held.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	log, ch, stop := logLines(t)
	done := make(chan error, 1)
	go func() {
		o := optsFrom(root, src)
		o.Log = log
		done <- Install(o)
		stop()
	}()
	waitLine(t, ch, fmt.Sprintf("qmail-install: waiting for another qmail-install on %s", root))
	held.Close() // the lock with it
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the run did not end within 60s of the lock's release")
	}
	for l := range ch {
		t.Errorf("log: %s", l)
	}
	if dev, err := Check(root); err != nil || len(dev) != 0 {
		t.Fatalf("check: %v %v", dev, err)
	}
}

// TestInstallLockWaitBounded: a lock on the root that another process
// keeps (any local user can open the directory and flock it) makes the
// run give up after lockWait with the reason and nothing changed, and
// makes -check's lock go on without it, saying so.
func TestInstallLockWaitBounded(t *testing.T) {
	root := filepath.Join(searchableDir(t), "q")
	src := fakeSource(t)
	if err := Install(optsFrom(root, src)); err != nil {
		t.Fatal(err)
	}
	saved := lockWait
	lockWait = 300 * time.Millisecond
	t.Cleanup(func() { lockWait = saved })
	held, err := os.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := unix.Flock(int(held.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	o := optsFrom(root, src)
	o.Log = &log
	err = Install(o)
	want := root + " is still locked by another process after 300ms (another qmail-install, or any process holding flock(2) on the directory: lslocks shows it); nothing was changed"
	if err == nil || err.Error() != want {
		t.Errorf("Install: %v, want %q", err, want)
	}
	var clog bytes.Buffer
	LockForCheck(root, &clog)()
	if !bytes.Contains(clog.Bytes(), []byte("checking without the lock")) {
		t.Errorf("-check's lock said %q, want a warning that it checks without the lock", clog.String())
	}
}
