package threads

import (
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// tasks is the number of threads of this process.
func tasks(t *testing.T) int {
	d, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Skipf("no /proc/self/task: %v", err)
	}
	return len(d)
}

// TestReserveMakesThreads: after Reserve(n) the process has at least n
// threads more than its one, and they stay after Reserve returns.
func TestReserveMakesThreads(t *testing.T) {
	Reserve(Daemon)
	if n := tasks(t); n < Daemon+1 {
		t.Errorf("%d threads after Reserve(%d)", n, Daemon)
	}
}

// burst runs n goroutines in a blocking system call at once: the runtime
// needs a thread for each.
func burst(n int) {
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ts := unix.Timespec{Nsec: 100e6}
			unix.Nanosleep(&ts, nil)
		}()
	}
	wg.Wait()
}

// TestSurvivesFullProcessTable: a process that cannot make another thread
// (RLIMIT_NPROC 1 for a user without privilege) lives through a burst of
// blocking calls after Reserve, and dies of it without (the child's exit
// status tells which). Run as root, the child runs as nobody, since the
// limit does not bind root.
func TestSurvivesFullProcessTable(t *testing.T) {
	if mode := os.Getenv("THREADS_TEST_CHILD"); mode != "" {
		if mode == "reserve" {
			Reserve(Daemon)
		}
		lim := unix.Rlimit{Cur: 1, Max: 1}
		if err := unix.Setrlimit(unix.RLIMIT_NPROC, &lim); err != nil {
			os.Exit(3)
		}
		burst(Daemon - 4)
		os.Exit(0)
	}
	prog := os.Args[0]
	if os.Getuid() == 0 {
		// nobody must be able to run a copy of this binary.
		dir, err := os.MkdirTemp("", "threads")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		b, err := os.ReadFile(prog)
		if err != nil {
			t.Fatal(err)
		}
		prog = dir + "/threads.test"
		if err := os.WriteFile(prog, b, 0o755); err != nil {
			t.Fatal(err)
		}
		os.Chmod(dir, 0o755)
	}
	for _, mode := range []string{"reserve", "none"} {
		cmd := exec.Command(prog, "-test.run=^TestSurvivesFullProcessTable$")
		cmd.Dir = "/"
		cmd.Env = append(os.Environ(), "THREADS_TEST_CHILD="+mode)
		if os.Getuid() == 0 {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		}
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		if code == 3 {
			t.Skipf("cannot set RLIMIT_NPROC here")
		}
		// The runtime's words; with cgo (-race), its pthread_create's.
		died := strings.Contains(string(out), "newosproc") || strings.Contains(string(out), "pthread_create failed")
		switch {
		case mode == "reserve" && code != 0:
			t.Errorf("with the reserve: exit %d, output %.300q", code, out)
		case mode == "none" && (code == 0 || !died):
			// The control: without the reserve the same burst must
			// kill it, or the test proves nothing.
			t.Errorf("without the reserve: exit %d (want the runtime's newosproc death), output %.300q", code, out)
		}
		t.Logf("%s: exit %d", mode, code)
	}
}
