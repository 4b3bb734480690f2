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
	made := Reserve(Daemon)
	if made != Fit(Daemon) {
		t.Errorf("Reserve made %d, Fit says %d", made, Fit(Daemon))
	}
	if n := tasks(t); n < made+1 {
		t.Errorf("%d threads after Reserve(%d) made %d", n, Daemon, made)
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
	if n := Fit(Daemon); n < Daemon {
		t.Skipf("a task limit here leaves room for a reserve of %d only", n)
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

// cgroupTree writes the files of a fake cgroup mount under root: for each
// directory (relative to root), its pids.max and pids.current.
func cgroupTree(t *testing.T, root string, dirs map[string][2]string) {
	t.Helper()
	for dir, v := range dirs {
		d := root + "/" + dir
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(d+"/pids.max", []byte(v[0]+"\n"), 0o644)
		os.WriteFile(d+"/pids.current", []byte(v[1]+"\n"), 0o644)
	}
}

// TestCgroupRoom: the room under the pids controller is the least of the
// process's cgroup and its ancestors, in the v1, v2 and hybrid layouts;
// "max" is no limit.
func TestCgroupRoom(t *testing.T) {
	for _, tc := range []struct {
		name   string
		self   string
		dirs   map[string][2]string
		room   int64
		hasLim bool
	}{
		{"v1", "9:name=systemd:/a\n8:pids:/svc/box\n7:memory:/x\n",
			map[string][2]string{"pids/svc/box": {"70", "47"}, "pids/svc": {"max", "60"}}, 23, true},
		{"v1 ancestor lower", "8:pids:/svc/box\n",
			map[string][2]string{"pids/svc/box": {"500", "47"}, "pids/svc": {"100", "90"}}, 10, true},
		{"v2", "0::/system.slice/qmail.service\n",
			map[string][2]string{"system.slice/qmail.service": {"95", "89"}}, 6, true},
		{"hybrid", "1:name=systemd:/x\n0::/box\n",
			map[string][2]string{"unified/box": {"300", "100"}}, 200, true},
		{"no limit", "8:pids:/svc\n0::/svc\n",
			map[string][2]string{"pids/svc": {"max", "5"}, "svc": {"max", "5"}}, 0, false},
		{"no pids controller", "7:memory:/x\n", nil, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			cgroupTree(t, root, tc.dirs)
			self := root + "/self"
			os.WriteFile(self, []byte(tc.self), 0o644)
			room, ok := cgroupRoom(root, self)
			if room != tc.room || ok != tc.hasLim {
				t.Errorf("room %d %v, want %d %v", room, ok, tc.room, tc.hasLim)
			}
		})
	}
}

// TestReserveFitsLimit: under a task limit the reserve takes an eighth of
// the room left, and nothing when there is almost none: a reserve must
// not keep the daemons from starting (QA reg27: 16 threads each made an
// idle system of 89 tasks, and one limited to 60-85 did not start).
func TestReserveFitsLimit(t *testing.T) {
	root := t.TempDir()
	cgroupTree(t, root, map[string][2]string{"pids/box": {"80", "56"}})
	self := root + "/self"
	os.WriteFile(self, []byte("8:pids:/box\n"), 0o644)
	oldRoot, oldSelf := cgroupRoot, procSelfCgroup
	cgroupRoot, procSelfCgroup = root, self
	t.Cleanup(func() { cgroupRoot, procSelfCgroup = oldRoot, oldSelf })
	if n := Fit(Daemon); n != 3 {
		t.Errorf("room 24: Fit(%d) = %d, want 3", Daemon, n)
	}
	os.WriteFile(root+"/pids/box/pids.current", []byte("79\n"), 0o644)
	if n := Reserve(Daemon); n != 0 {
		t.Errorf("room 1: Reserve made %d threads, want none", n)
	}
	os.WriteFile(root+"/pids/box/pids.max", []byte("max\n"), 0o644)
	if n := Fit(Daemon); n != Daemon && os.Geteuid() == 0 {
		t.Errorf("no limit: Fit(%d) = %d", Daemon, n)
	}
}
