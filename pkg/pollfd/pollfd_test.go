package pollfd

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func nonblocking(t *testing.T, fd int) bool {
	t.Helper()
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fl&unix.O_NONBLOCK != 0
}

// A pipe becomes a File that waits in the poller: a read deadline works
// (it does only for polled descriptors), and a read that has to wait
// still returns the data once it comes.
func TestPipe(t *testing.T) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	w := os.NewFile(uintptr(p[1]), "w")
	defer w.Close()
	r := File(p[0], "r")
	defer r.Close()
	if !nonblocking(t, p[0]) {
		t.Fatal("pipe left blocking")
	}
	r.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	b := make([]byte, 8)
	if _, err := r.Read(b); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read with a deadline on an empty pipe: %v", err)
	}
	r.SetReadDeadline(time.Time{})
	go func() {
		time.Sleep(20 * time.Millisecond)
		w.Write([]byte("hi"))
	}()
	if n, err := r.Read(b); err != nil || string(b[:n]) != "hi" {
		t.Fatalf("read %q %v", b[:n], err)
	}
}

// A socket is switched too; a regular file is left as it is.
func TestKinds(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[1])
	s := File(fds[0], "s")
	defer s.Close()
	if !nonblocking(t, fds[0]) {
		t.Error("socket left blocking")
	}
	fd, err := unix.Open(filepath.Join(t.TempDir(), "f"), unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f := File(fd, "f")
	defer f.Close()
	if nonblocking(t, fd) {
		t.Error("regular file switched to non-blocking")
	}
}

// threads is this process's OS thread count.
func threads(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc")
	}
	for _, l := range strings.Split(string(b), "\n") {
		if n, ok := strings.CutPrefix(l, "Threads:"); ok {
			v, _ := strconv.Atoi(strings.TrimSpace(n))
			return v
		}
	}
	t.Skip("no Threads line")
	return 0
}

// TestWaitParks: 60 children waited for at once do not take 60 OS threads
// (each cmd.Wait would block one in wait4), and each is reaped with its
// exit status.
func TestWaitParks(t *testing.T) {
	const n = 60
	release := make([]*os.File, 0, n)
	var wg sync.WaitGroup
	codes := make([]int, n)
	for i := 0; i < n; i++ {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		// The child waits until its pipe closes, then exits i%3.
		cmd := exec.Command("/bin/sh", "-c", "read x; exit "+strconv.Itoa(i%3))
		cmd.Stdin = r
		if err := cmd.Start(); err != nil {
			t.Skip("cannot start /bin/sh:", err)
		}
		r.Close()
		release = append(release, w)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			Wait(cmd)
			codes[i] = cmd.ProcessState.ExitCode()
		}(i)
	}
	// Give the waiters time to block (bounded), then count threads.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if th := threads(t); th >= n/2 {
		t.Errorf("%d OS threads while %d children are waited for", th, n)
	}
	for _, w := range release {
		w.Close()
	}
	wg.Wait()
	for i, c := range codes {
		if c != i%3 {
			t.Errorf("child %d: exit %d, want %d", i, c, i%3)
		}
	}
}
