package ctl

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/internal/testutil"
	"github.com/hqmail/hqmail/pkg/hold"
	"github.com/hqmail/hqmail/pkg/qdate"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/qread/queuetest"
	"github.com/hqmail/hqmail/pkg/sched"
)

func makeTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	queuetest.MakeQueue(t, root)
	if err := os.Mkdir(filepath.Join(root, "control"), 0755); err != nil {
		t.Fatal(err)
	}
	return root
}

func run(t *testing.T, root string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(root, args, &out, &errb)
	return code, out.String(), errb.String()
}

func readFlag(t *testing.T, root, name string) (string, bool) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "control", name))
	if os.IsNotExist(err) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b), true
}

func TestHoldReleaseRunning(t *testing.T) {
	root := makeTree(t)
	startFake(t, root)
	steps := []struct {
		args     []string
		code     int
		file     string // holdremote contents; "-" = absent
		sendSays string // holdremote value in sendstatus
	}{
		{[]string{"hold", "remote"}, 0, "*\n", "all"},
		{[]string{"hold", "remote"}, 0, "*\n", "all"},
		{[]string{"release", "remote", "a.example"}, 0, "*\n", "all"}, // still all held: said on stderr
		{[]string{"release", "remote"}, 0, "-", "no"},
		{[]string{"release", "remote"}, 0, "-", "no"},
		{[]string{"hold", "remote", "A.example", ".b.example"}, 0, "a.example\n.b.example\n", "a.example .b.example"},
		{[]string{"hold", "remote", "a.example", "c.example"}, 0, "a.example\n.b.example\nc.example\n", "a.example .b.example c.example"},
		{[]string{"release", "remote", "a.example", "nothere.example"}, 0, ".b.example\nc.example\n", ".b.example c.example"},
		{[]string{"release", "remote", ".B.example", "c.example"}, 0, "-", "no"},
		{[]string{"hold", "remote", "bad domain"}, ExitUsage, "-", "no"},
		// "all" would have been a held domain named all: refused.
		{[]string{"hold", "remote", "all"}, ExitUsage, "-", "no"},
		{[]string{"hold", "local", "x.example"}, ExitUsage, "-", "no"},
		{[]string{"hold", "sideways"}, ExitUsage, "-", "no"},
	}
	for i, s := range steps {
		code, out, errs := run(t, root, s.args...)
		if code != s.code {
			t.Fatalf("step %d %v: exit %d, want %d (stdout %q stderr %q)", i, s.args, code, s.code, out, errs)
		}
		got, ok := readFlag(t, root, "holdremote")
		if !ok {
			got = "-"
		}
		if got != s.file {
			t.Fatalf("step %d %v: holdremote %q, want %q", i, s.args, got, s.file)
		}
		st, _ := ReadStatus(root)
		if st["holdremote"] != s.sendSays {
			t.Fatalf("step %d %v: qmail-send reports holdremote %q, want %q", i, s.args, st["holdremote"], s.sendSays)
		}
		if code == 0 && !strings.Contains(out, "confirmed") {
			t.Errorf("step %d: stdout %q lacks the confirmation", i, out)
		}
	}
	code, _, _ := run(t, root, "hold", "local")
	if _, ok := readFlag(t, root, "holdlocal"); code != 0 || !ok {
		t.Fatalf("hold local: exit %d", code)
	}
	st, _ := ReadStatus(root)
	if st["holdlocal"] != "yes" {
		t.Fatalf("qmail-send did not see holdlocal: %v", st)
	}
	code, _, _ = run(t, root, "release", "local")
	if _, ok := readFlag(t, root, "holdlocal"); code != 0 || ok {
		t.Fatalf("release local: exit %d", code)
	}
}

func TestHoldKeepsCommentsAndJunk(t *testing.T) {
	root := makeTree(t)
	startFake(t, root)
	queuetest.WriteFile(t, filepath.Join(root, "control", "holdremote"), []byte("# office VPN\nx.example\nthis is junk\n"))
	code, _, errs := run(t, root, "hold", "remote", "y.example")
	if code != 0 || !strings.Contains(errs, `line 3 is not a domain and holds nothing: "this is junk"`) {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	if got, _ := readFlag(t, root, "holdremote"); got != "# office VPN\nx.example\nthis is junk\ny.example\n" {
		t.Fatalf("holdremote = %q", got)
	}
	code, out, _ := run(t, root, "status")
	if code != 0 || !strings.Contains(out, "warning: control/holdremote line 3 is not a domain") ||
		!strings.Contains(out, "remote: held for x.example y.example") {
		t.Fatalf("status exit %d:\n%s", code, out)
	}
	// Releasing every domain removes the file even though junk is left:
	// a file of junk alone would hold everything.
	code, _, _ = run(t, root, "release", "remote", "x.example", "y.example")
	if _, ok := readFlag(t, root, "holdremote"); code != 0 || ok {
		t.Fatalf("release: exit %d, file still there: %v", code, ok)
	}
}

func TestNotRunning(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, root string)
	}{
		{"no sendmutex", func(t *testing.T, root string) {}},
		{"sendmutex unlocked", func(t *testing.T, root string) {
			queuetest.WriteFile(t, filepath.Join(root, MutexFile), []byte("1\n"))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := makeTree(t)
			tc.setup(t, root)
			code, out, errs := run(t, root, "hold", "remote")
			if code != ExitNotRunning || !strings.Contains(errs, "qmail-send is not running; the flag is set and the next start honours it") {
				t.Fatalf("hold: exit %d, stdout %q, stderr %q", code, out, errs)
			}
			if _, ok := readFlag(t, root, "holdremote"); !ok {
				t.Fatal("flag not set")
			}
			code, _, errs = run(t, root, "release", "remote")
			if code != ExitNotRunning || !strings.Contains(errs, "qmail-send is not running; the flag is removed and the next start honours it") {
				t.Fatalf("release: exit %d, stderr %q", code, errs)
			}
			if _, ok := readFlag(t, root, "holdremote"); ok {
				t.Fatal("flag not removed")
			}
			for _, args := range [][]string{{"flush"}, {"reload"}, {"pid"}, {"status"}} {
				if code, _, _ := run(t, root, args...); code != ExitNotRunning {
					t.Errorf("%v: exit %d, want %d", args, code, ExitNotRunning)
				}
			}
		})
	}
}

// startSleeper starts a process that must never be signalled: sleep dies on
// SIGHUP and SIGALRM, so a signal shows as its early exit.
func startSleeper(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start sleep: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
			t.Errorf("the stranger (sleep, pid %d) exited: it was signalled", cmd.Process.Pid)
		default:
		}
		cmd.Process.Kill()
		<-done
	})
	return cmd
}

func TestStalePid(t *testing.T) {
	t.Run("locked by another pid", func(t *testing.T) {
		root := makeTree(t)
		stranger := startSleeper(t)
		startFake(t, root, fmt.Sprintf("FAKE_SEND_PIDTEXT=%d", stranger.Process.Pid))
		for _, args := range [][]string{{"hold", "remote"}, {"flush"}, {"pid"}} {
			code, _, errs := run(t, root, args...)
			if code != ExitTemp || !strings.Contains(errs, "stale pid file, not signalling anyone") {
				t.Errorf("%v: exit %d, stderr %q", args, code, errs)
			}
		}
		if _, ok := readFlag(t, root, "holdremote"); !ok {
			t.Error("flag not set")
		}
	})
	t.Run("unlocked file naming a live process", func(t *testing.T) {
		root := makeTree(t)
		stranger := startSleeper(t)
		queuetest.WriteFile(t, filepath.Join(root, MutexFile), []byte(fmt.Sprintf("%d\n", stranger.Process.Pid)))
		code, _, errs := run(t, root, "release", "remote")
		if code != ExitNotRunning {
			t.Errorf("exit %d, stderr %q", code, errs)
		}
		code, _, _ = run(t, root, "flush")
		if code != ExitNotRunning {
			t.Errorf("flush: exit %d", code)
		}
	})
	t.Run("locked, garbage pid", func(t *testing.T) {
		root := makeTree(t)
		startFake(t, root, "FAKE_SEND_PIDTEXT=not-a-pid")
		code, _, errs := run(t, root, "flush")
		if code != ExitTemp || !strings.Contains(errs, "holds no valid pid") {
			t.Errorf("exit %d, stderr %q", code, errs)
		}
	})
}

func TestTimeout(t *testing.T) {
	root := makeTree(t)
	startFake(t, root, "FAKE_SEND_MUTE=1")
	code, _, errs := run(t, root, "-t", "0.3", "hold", "remote")
	if code != ExitTemp || !strings.Contains(errs, "did not confirm within 300ms") {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	if _, ok := readFlag(t, root, "holdremote"); !ok {
		t.Fatal("flag not set")
	}
}

func TestFlushReloadPid(t *testing.T) {
	root := makeTree(t)
	fake := startFake(t, root)
	for i, args := range [][]string{{"flush"}, {"reload"}, {"flush"}} {
		g0, _ := ReadStatus(root)
		code, out, errs := run(t, root, args...)
		if code != 0 || !strings.Contains(out, "confirmed") {
			t.Fatalf("%v: exit %d, stdout %q, stderr %q", args, code, out, errs)
		}
		g1, _ := ReadStatus(root)
		if g1.Generation() <= g0.Generation() || g1.Generation() != int64(i+1) {
			t.Fatalf("%v: generation %d -> %d", args, g0.Generation(), g1.Generation())
		}
	}
	code, out, _ := run(t, root, "pid")
	if code != 0 || strings.TrimSpace(out) != fmt.Sprint(fake.Process.Pid) {
		t.Fatalf("pid: exit %d, %q", code, out)
	}
	queuetest.WriteFile(t, filepath.Join(root, "control", "holdremote"), nil)
	if _, out, _ := run(t, root, "flush"); !strings.Contains(out, "note: control/holdremote is set") {
		t.Errorf("flush with a hold: %q", out)
	}
}

// TestSignalAfterRestart: just after a restart sendstatus is still the one
// the old qmail-send wrote (its pid, its count of signals: 5) until the new
// one writes its own, counting from 0. A command signalling the new one
// then waits for that pid's first signal (generation 1), not for a
// generation above the old process's.
func TestSignalAfterRestart(t *testing.T) {
	for _, args := range [][]string{{"reload"}, {"flush"}, {"hold", "remote"}, {"release", "remote"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			root := makeTree(t)
			if args[0] == "release" {
				queuetest.WriteFile(t, filepath.Join(root, "control", "holdremote"), []byte("*\n"))
			}
			// The qmail-send before the restart: gone, its status left.
			const oldPid = 999999999
			queuetest.WriteFile(t, filepath.Join(root, StatusFile),
				[]byte(fmt.Sprintf("pid %d\ngeneration 5\nholdlocal no\nholdremote no\nsince-local 0\nsince-remote 0\n", oldPid)))
			fake := startFakeQuiet(t, root)
			code, out, errs := run(t, root, append([]string{"-t", "2"}, args...)...)
			if code != 0 || !strings.Contains(out, fmt.Sprintf("qmail-send (pid %d) confirmed", fake.Process.Pid)) {
				t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
			}
			st, _ := ReadStatus(root)
			if st["pid"] != fmt.Sprint(fake.Process.Pid) || st.Generation() < 1 {
				t.Errorf("status after: %v", st)
			}
		})
	}
}

// TestSignalAfterSamePidRestart: a qmail-send restarted under the pid of
// the one before (a container starts its processes in a fixed order)
// counts its signals from 0 again; until it writes its first status the
// file is the old process's, same pid, generation 5. The started key tells
// the two apart: the new process's generation 1 is the confirmation (it
// waited for a generation above 5 before and timed out).
func TestSignalAfterSamePidRestart(t *testing.T) {
	root := makeTree(t)
	fake := startFakeQuiet(t, root)
	queuetest.WriteFile(t, filepath.Join(root, StatusFile),
		[]byte(fmt.Sprintf("pid %d\ngeneration 5\nholdlocal no\nholdremote no\nsince-local 0\nsince-remote 0\nstarted 1\n", fake.Process.Pid)))
	code, out, errs := run(t, root, "-t", "2", "reload")
	if code != 0 || !strings.Contains(out, fmt.Sprintf("qmail-send (pid %d) confirmed", fake.Process.Pid)) {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	// The same process signalled twice: its generation must move past
	// the one read before, as ever.
	st0, _ := ReadStatus(root)
	code, out, errs = run(t, root, "-t", "2", "reload")
	st1, _ := ReadStatus(root)
	if code != 0 || st1.Generation() != st0.Generation()+1 || st1["started"] != st0["started"] {
		t.Fatalf("second reload: exit %d, stdout %q, stderr %q; status %v -> %v", code, out, errs, st0, st1)
	}
}

// TestSignalUnreadableStatus: a sendstatus that cannot be read does not
// keep the signal from qmail-send (a release from a network hook must
// reach it). The fake renames a new status over the FIFO at the HUP: the
// command is then confirmed. One that never confirms (mute), behind a
// directory: the command says the signal was sent and fails.
func TestSignalUnreadableStatus(t *testing.T) {
	for _, args := range [][]string{{"reload"}, {"release", "remote"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			root := makeTree(t)
			queuetest.WriteFile(t, filepath.Join(root, "control", "holdremote"), []byte("*\n"))
			fake := startFake(t, root)
			status := filepath.Join(root, StatusFile)
			os.Remove(status)
			if err := syscall.Mkfifo(status, 0o644); err != nil {
				t.Fatal(err)
			}
			code, out, errs := run(t, root, append([]string{"-t", "5"}, args...)...)
			if code != 0 || !strings.Contains(out, fmt.Sprintf("qmail-send (pid %d) confirmed", fake.Process.Pid)) {
				t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
			}
			if st, err := ReadStatus(root); err != nil || st.Generation() < 1 {
				t.Errorf("status after: %v, %v", st, err)
			}
		})
	}
	root := makeTree(t)
	fake := startFake(t, root, "FAKE_SEND_MUTE=1")
	status := filepath.Join(root, StatusFile)
	os.Remove(status)
	if err := os.Mkdir(status, 0o755); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("qmail-send (pid %d) was signalled, but its confirmation cannot be read: unable to read %s", fake.Process.Pid, StatusFile)
	code, out, errs := run(t, root, "reload")
	if code != ExitTemp || !strings.Contains(errs, want) || !strings.Contains(errs, "qmail-install -check") {
		t.Errorf("mute, status a directory, reload: exit %d, stdout %q, stderr %q; want %q", code, out, errs, want)
	}
	code, out, errs = run(t, root, "hold", "remote")
	if code != ExitTemp || !strings.Contains(errs, want) || !strings.Contains(errs, "and the signal makes qmail-send re-read it") {
		t.Errorf("mute, status a directory, hold: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

func TestUnreadableControlDir(t *testing.T) {
	root := makeTree(t)
	startFake(t, root)
	ctl := filepath.Join(root, "control")
	if err := os.Remove(ctl); err != nil {
		t.Fatal(err)
	}
	queuetest.WriteFile(t, ctl, []byte("not a directory\n"))
	for _, args := range [][]string{{"hold", "remote"}, {"release", "local"}, {"status"}, {"queue"}} {
		code, out, errs := run(t, root, args...)
		t.Logf("%v: exit %d\n%s%s", args, code, out, errs)
		if code != ExitTemp || !strings.Contains(out+errs, "not a directory") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errs)
		}
	}
	if os.Geteuid() != 0 {
		os.Remove(ctl)
		os.Mkdir(ctl, 0)
		defer os.Chmod(ctl, 0755)
		code, _, errs := run(t, root, "hold", "remote")
		if code != ExitTemp || !strings.Contains(errs, "permission denied") {
			t.Errorf("mode 0 control dir: exit %d, stderr %q", code, errs)
		}
	}
}

// TestConcurrentHoldRelease races 20 hold/release calls on disjoint domains
// against a running (fake) qmail-send: the final file must hold exactly the
// expected set, and qmail-send's last re-read must match it.
func TestConcurrentHoldRelease(t *testing.T) {
	root := makeTree(t)
	startFake(t, root)
	var initial []string
	for i := 0; i < 10; i++ {
		initial = append(initial, fmt.Sprintf("old%d.example", i))
	}
	queuetest.WriteFile(t, filepath.Join(root, "control", "holdremote"), []byte(strings.Join(initial, "\n")+"\n"))
	var wg sync.WaitGroup
	codes := make([]int, 20)
	errs := make([]string, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var args []string
			if i%2 == 0 {
				args = []string{"-t", "30", "hold", "remote", fmt.Sprintf("new%d.example", i)}
			} else {
				args = []string{"-t", "30", "release", "remote", fmt.Sprintf("old%d.example", i/2)}
			}
			var out, eb bytes.Buffer
			codes[i] = Main(root, args, &out, &eb)
			errs[i] = eb.String()
		}(i)
	}
	wg.Wait()
	for i, c := range codes {
		if c != 0 {
			t.Errorf("call %d: exit %d: %s", i, c, errs[i])
		}
	}
	var want []string
	for i := 0; i < 20; i += 2 {
		want = append(want, fmt.Sprintf("new%d.example", i))
	}
	b, _ := readFlag(t, root, "holdremote")
	h := hold.Parse([]byte(b))
	got := append([]string(nil), h.Domains...)
	sort.Strings(got)
	sort.Strings(want)
	if h.All || strings.Join(got, ",") != strings.Join(want, ",") || len(h.Junk) != 0 {
		t.Fatalf("holdremote after the race = %q; want the domains %v", b, want)
	}
	st, _ := ReadStatus(root)
	sent := strings.Fields(st["holdremote"])
	sort.Strings(sent)
	if strings.Join(sent, ",") != strings.Join(want, ",") {
		t.Fatalf("qmail-send's last re-read saw %v, file has %v", sent, got)
	}
	if _, err := os.Stat(filepath.Join(root, "control", "holdremote.tmp")); !os.IsNotExist(err) {
		t.Errorf("temporary file left behind: %v", err)
	}
}

// Message files with neither an info file nor a todo/ entry (left by a
// killed qmail-queue or qmail-clean) are counted by qmail-qstat but listed
// by no one: status names them. A message in todo/ whose id still has an
// earlier message's info file is not one of them, and a queue without
// them has no such line.
func TestStatusUnlisted(t *testing.T) {
	root := makeTree(t)
	startFake(t, root)
	q := filepath.Join(root, "queue")
	queuetest.Add(t, q, queuetest.Msg{ID: 100, Birth: time.Now(), Body: "hello\n", Sender: "a@example.org",
		Local: []queuetest.Rcpt{{Addr: "me@local"}}})
	code, out, _ := run(t, root, "status")
	if code != 0 || strings.Contains(out, "unlisted") {
		t.Fatalf("status of a queue without unlisted messages: exit %d\n%s", code, out)
	}
	queuetest.AddTodo(t, q, 300, "new\n", "fresh@example.org", "a@b.example")
	queuetest.WriteFile(t, filepath.Join(q, "info", strconv.Itoa(300%qhome.Split), "300"), []byte("Fold@example.org\x00"))
	for _, id := range []int{41, 42} {
		queuetest.WriteFile(t, filepath.Join(q, "mess", strconv.Itoa(id%qhome.Split), strconv.Itoa(id)), []byte("x\n"))
	}
	code, out, _ = run(t, root, "status")
	for _, want := range []string{
		"queue: 4 messages, 1 not yet preprocessed\n",
		"pending: local 1 message, remote 0 messages",
		"unlisted: 2 messages with a message file only (being queued now, or left by a killed qmail-queue or a crash; qmail-send removes those after 36 hours)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if code != 0 {
		t.Errorf("status exit %d", code)
	}
}

// One of each is counted in the singular (it said "1 messages").
func TestStatusSingular(t *testing.T) {
	root := makeTree(t)
	startFake(t, root)
	q := filepath.Join(root, "queue")
	queuetest.Add(t, q, queuetest.Msg{ID: 100, Birth: time.Now(), Body: "hello\n", Sender: "a@example.org",
		Local:  []queuetest.Rcpt{{Addr: "me@local"}},
		Remote: []queuetest.Rcpt{{Addr: "x@held.example"}}})
	if code, _, errs := run(t, root, "hold", "remote", "held.example"); code != 0 {
		t.Fatalf("hold: %d %s", code, errs)
	}
	code, out, _ := run(t, root, "status")
	for _, want := range []string{
		"queue: 1 message, 0 not yet preprocessed\n",
		"pending: local 1 message, remote 1 message (1 remote recipient held by control/holdremote)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if code != 0 {
		t.Errorf("status exit %d", code)
	}
}

func TestStatusAndQueue(t *testing.T) {
	root := makeTree(t)
	startFake(t, root)
	q := filepath.Join(root, "queue")
	now := time.Now()
	queuetest.Add(t, q, queuetest.Msg{ID: 100, Birth: now.Add(-90 * time.Minute), Body: "hello\n", Sender: "a@example.org",
		Local:  []queuetest.Rcpt{{Addr: "me@local"}},
		Remote: []queuetest.Rcpt{{Addr: "x@held.example"}, {Addr: "y@free.example", Done: true}}})
	queuetest.Add(t, q, queuetest.Msg{ID: 47, Birth: now.Add(-50 * time.Hour), Body: "x", Sender: "",
		Remote: []queuetest.Rcpt{{Addr: "z@held.example"}}})
	queuetest.Add(t, q, queuetest.Msg{ID: 5, Birth: now, Body: "", Sender: "b@example.org",
		Remote: []queuetest.Rcpt{{Addr: "z@held.example", Done: true}}})
	queuetest.Add(t, q, queuetest.Msg{ID: 6, Birth: now, Body: "", Sender: "c@example.org", Bouncing: true})
	// Failures recorded while another recipient is still tried.
	queuetest.Add(t, q, queuetest.Msg{ID: 7, Birth: now, Body: "", Sender: "d@example.org", Bouncing: true,
		Local: []queuetest.Rcpt{{Addr: "me@local"}, {Addr: "gone@local", Done: true}}})
	queuetest.AddTodo(t, q, 300, "new\n", "fresh@example.org", "a@b.example", "c@d.example")
	if code, _, errs := run(t, root, "hold", "remote", "held.example"); code != 0 {
		t.Fatalf("hold: %d %s", code, errs)
	}
	code, out, _ := run(t, root, "status")
	for _, want := range []string{
		"qmail-send: running, pid ",
		"remote: held for held.example since 14 Nov 2023 22:13:20 GMT",
		// The fake's hold period began long before the flag was written.
		"; control/holdremote last changed ",
		"local: not held\n",
		"queue: 6 messages, 1 not yet preprocessed\n",
		"pending: local 2 messages, remote 2 messages (2 remote recipients held by control/holdremote)\n",
		"qmail-send reported at its last status write (",
		" GMT): queued-local 1, queued-remote 2\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if code != 0 {
		t.Errorf("status exit %d", code)
	}
	code, out, _ = run(t, root, "queue")
	want := []string{
		"5 * 0 0/1 done <b@example.org>",
		"6 * 0 0/0 bouncing <c@example.org>",
		"7 * 0 1/2 queued,failures <d@example.org>",
		"47 2d2h 1 1/1 held <>",
		"100 1h30m 6 2/3 partly-held <a@example.org>",
		"300 * 4 2/2 todo <fresh@example.org>",
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != len(want) {
		t.Fatalf("queue: exit %d:\n%s", code, out)
	}
	for i, w := range want {
		// The age of a message born "now" depends on the test's speed.
		got := strings.Fields(lines[i])
		exp := strings.Fields(w)
		if len(got) == len(exp) && exp[1] == "*" {
			got[1] = "*"
		}
		if strings.Join(got, " ") != w {
			t.Errorf("queue line %d = %q, want %q", i, lines[i], w)
		}
	}
}

func TestUsage(t *testing.T) {
	root := makeTree(t)
	for _, args := range [][]string{nil, {"bogus"}, {"hold"}, {"status", "x"}, {"flush", "x"}, {"-t", "abc", "flush"}, {"-t", "NaN", "flush"}, {"-t", "1e-300", "flush"}, {"-t", "0", "flush"}, {"-t", "1_0", "flush"}, {"-t", "0x1p3", "flush"}, {"-x"}} {
		if code, _, errs := run(t, root, args...); code != ExitUsage || !strings.Contains(errs, "qmailctl") {
			t.Errorf("%v: exit %d, stderr %q", args, code, errs)
		}
	}
	if _, _, errs := run(t, root, "stauts"); !strings.HasPrefix(errs, "qmailctl: unknown command \"stauts\"\nusage:") {
		t.Errorf("a mistyped command: stderr %q", errs)
	}
	if code, out, _ := run(t, root, "-h"); code != 0 || !strings.HasPrefix(out, "usage:") {
		t.Errorf("-h: %d %q", code, out)
	}
}

func TestParseStatus(t *testing.T) {
	tests := []struct {
		in   string
		gen  int64
		pid  string
		keys int
	}{
		{"", -1, "", 0},
		{"pid 12\ngeneration 3\nholdremote a.example b.example\n", 3, "12", 3},
		{"pid 12\ngeneration 1", -1, "12", 1}, // half written
		{"pid 12\ngeneration x\n", -1, "12", 2},
		{"# c\n\nkeyonly\n", -1, "", 1},
	}
	for _, tc := range tests {
		s := ParseStatus([]byte(tc.in))
		if s.Generation() != tc.gen || s["pid"] != tc.pid || len(s) != tc.keys {
			t.Errorf("ParseStatus(%q) = %v (generation %d)", tc.in, s, s.Generation())
		}
	}
	s := ParseStatus([]byte("holdlocal no\nholdremote all\nx 0\n"))
	if s.Flag("holdlocal") || !s.Flag("holdremote") || s.Flag("x") || s.Flag("missing") {
		t.Errorf("Flag: %v", s)
	}
}

// TestSendExitsWhileWaiting: a qmail-send that dies without confirming is
// noticed before the time-out.
func TestSendExitsWhileWaiting(t *testing.T) {
	root := makeTree(t)
	fake := startFake(t, root, "FAKE_SEND_MUTE=1")
	go func() {
		time.Sleep(100 * time.Millisecond)
		fake.Process.Kill()
	}()
	code, _, errs := run(t, root, "-t", "60", "flush")
	if code != ExitTemp || !strings.Contains(errs, "exited before confirming") {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
}

// TestSendKeepsOldState: qmail-send confirms the HUP but could not re-read
// the flag (it keeps its old state): qmailctl must not report success.
func TestSendKeepsOldState(t *testing.T) {
	root := makeTree(t)
	startFake(t, root, "FAKE_SEND_STUCK=1")
	code, out, errs := run(t, root, "hold", "remote")
	if code != ExitTemp || !strings.Contains(errs, `re-read its controls but reports holdremote "no"`) {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, _, errs = run(t, root, "hold", "local")
	if code != ExitTemp || !strings.Contains(errs, `reports holdlocal "no"`) {
		t.Fatalf("hold local: exit %d, stderr %q", code, errs)
	}
}

func TestQueueShow(t *testing.T) {
	root := makeTree(t)
	q := filepath.Join(root, "queue")
	birth := time.Now().Add(-3 * time.Hour)
	queuetest.Add(t, q, queuetest.Msg{ID: 100, Birth: birth, Body: "hello\n", Sender: "a@example.org",
		Local:  []queuetest.Rcpt{{Addr: "me@local"}},
		Remote: []queuetest.Rcpt{{Addr: "x@held.example"}, {Addr: "y@free.example", Done: true}, {Addr: "z@free.example"}}})
	queuetest.Add(t, q, queuetest.Msg{ID: 70, Birth: birth, Body: "y", Sender: "x"})
	queuetest.WriteFile(t, filepath.Join(q, "info", "1", "70"), []byte("garbage"))
	queuetest.AddTodo(t, q, 300, "new\n", "fresh@example.org", "a@b.example", "c@d.example")
	queuetest.WriteFile(t, filepath.Join(root, "control", "holdremote"), []byte("held.example\n"))

	code, out, errs := run(t, root, "queue", "100")
	want := "message 100\n  birth  " + qdate.Qread(birth) + " (3h0m ago)\n  size   6\n  from   <a@example.org>\n  state  partly-held\n" +
		"  local  me@local  pending\n  remote x@held.example  held\n  remote y@free.example  done\n  remote z@free.example  pending\n"
	// The age depends on when the test runs; compare without it.
	ageRe := regexp.MustCompile(` \([0-9dhms]+ ago\)`)
	if code != 0 || ageRe.ReplaceAllString(out, "") != ageRe.ReplaceAllString(want, "") || !ageRe.MatchString(out) {
		t.Errorf("queue 100: exit %d, stderr %q\n got %q\nwant %q", code, errs, out, want)
	}
	code, out, _ = run(t, root, "queue", "300")
	if code != 0 || !strings.Contains(out, "state  todo (not yet preprocessed by qmail-send; 2 recipients)") {
		t.Errorf("queue 300: exit %d\n%s", code, out)
	}
	tests := []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"queue", "12345"}, ExitUsage, "message 12345 is not in the queue"},
		{[]string{"queue", "abc"}, ExitUsage, `not a message id: "abc"`},
		{[]string{"queue", "70"}, ExitTemp, "trouble with message 70: info file: file damaged"},
		{[]string{"queue", "12345", "70"}, ExitTemp, "message 12345 is not in the queue"},
	}
	for _, tc := range tests {
		code, _, errs := run(t, root, tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.err) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, errs, tc.code, tc.err)
		}
	}
}

func TestDelete(t *testing.T) {
	root := makeTree(t)
	q := filepath.Join(root, "queue")
	queuetest.WriteFile(t, filepath.Join(root, MutexFile), nil)
	queuetest.Add(t, q, queuetest.Msg{ID: 100, Birth: time.Now(), Body: "hello\n", Sender: "a@example.org",
		Local:  []queuetest.Rcpt{{Addr: "me@local"}},
		Remote: []queuetest.Rcpt{{Addr: "x@y.example", Done: true}, {Addr: "z@y.example"}}})
	queuetest.Add(t, q, queuetest.Msg{ID: 47, Birth: time.Now(), Body: "x", Sender: "b@example.org",
		Remote: []queuetest.Rcpt{{Addr: "w@y.example"}}, Bouncing: true})
	queuetest.AddTodo(t, q, 300, "new\n", "fresh@example.org", "a@b.example")

	code, out, errs := run(t, root, "delete", "100", "47")
	// Done, qmail-send not running: exit 3, as for the hold flags.
	if code != ExitNotRunning || !strings.Contains(out, "message 100: 2 recipients will not be delivered") ||
		!strings.Contains(out, "message 47: 1 recipient will not be delivered") {
		t.Fatalf("delete: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	for _, p := range []string{"local/8/100", "remote/8/100", "remote/1/47"} {
		if _, err := os.Stat(filepath.Join(q, p)); !os.IsNotExist(err) {
			t.Errorf("%s still there: %v", p, err)
		}
	}
	// info, mess and the bounce of earlier failures stay for qmail-send.
	for _, p := range []string{"info/8/100", "mess/8/100", "info/1/47", "mess/1/47", "bounce/47"} {
		if _, err := os.Stat(filepath.Join(q, p)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	tests := []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"delete", "555"}, ExitUsage, "message 555 is not in the queue"},
		{[]string{"delete", "300"}, ExitTemp, "message 300 is not preprocessed yet"},
		{[]string{"delete", "x1"}, ExitUsage, `not a message id: "x1"`},
		{[]string{"delete"}, ExitUsage, "usage: qmailctl delete ID..."},
	}
	for _, tc := range tests {
		code, _, errs := run(t, root, tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.err) {
			t.Errorf("%v: exit %d, stderr %q; want %d, %q", tc.args, code, errs, tc.code, tc.err)
		}
	}
	if _, err := os.Stat(filepath.Join(q, "todo", "300")); err != nil {
		t.Errorf("todo/300 touched: %v", err)
	}

	// Refused while qmail-send runs; nothing is changed.
	queuetest.Add(t, q, queuetest.Msg{ID: 200, Birth: time.Now(), Body: "y", Sender: "c@example.org",
		Remote: []queuetest.Rcpt{{Addr: "v@y.example"}}})
	// While qmail-send runs the request goes to it; here the tree has no
	// request FIFO: refused, nothing changed.
	startFake(t, root)
	code, _, errs = run(t, root, "delete", "200")
	if code != ExitTemp || !strings.Contains(errs, "queue/lock/sendctl does not exist; qmail-install creates it") {
		t.Errorf("delete while running: exit %d, stderr %q", code, errs)
	}
	if b, err := os.ReadFile(filepath.Join(q, "remote", "16", "200")); err != nil || string(b) != "Tv@y.example\x00" {
		t.Errorf("remote/16/200 = %q, %v", b, err)
	}
}

func TestMarkAllDone(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	queuetest.WriteFile(t, p, []byte("Ta@b\x00Dc@d\x00Te@f\x00Tpartial"))
	n, err := markAllDone(p)
	b, _ := os.ReadFile(p)
	if err != nil || n != 2 || string(b) != "Da@b\x00Dc@d\x00De@f\x00Tpartial" {
		t.Errorf("markAllDone = %d, %v; file %q", n, err, b)
	}
	if n, err := markAllDone(p + "-missing"); n != -1 || err != nil {
		t.Errorf("missing file: %d, %v", n, err)
	}
}

func TestBounce(t *testing.T) {
	root := makeTree(t)
	q := filepath.Join(root, "queue")
	queuetest.WriteFile(t, filepath.Join(root, MutexFile), nil)
	queuetest.WriteFile(t, filepath.Join(root, "control", "virtualdomains"), []byte("virt.example:joe\n"))
	queuetest.Add(t, q, queuetest.Msg{ID: 100, Birth: time.Now(), Body: "hello\n", Sender: "a@example.org",
		Local:  []queuetest.Rcpt{{Addr: "joe-box@virt.example"}},
		Remote: []queuetest.Rcpt{{Addr: "x@y.example", Done: true}, {Addr: "z@y.example"}}})
	queuetest.WriteFile(t, filepath.Join(q, "bounce", "100"), []byte("<x@y.example>:\nearlier failure\n\n"))
	code, out, errs := run(t, root, "bounce", "100")
	if code != ExitNotRunning || !strings.Contains(out, "message 100: 2 recipients bounced") {
		t.Fatalf("bounce: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	b, _ := os.ReadFile(filepath.Join(q, "bounce", "100"))
	want := "<x@y.example>:\nearlier failure\n\n<box@virt.example>:\n" + BounceText + "\n\n<z@y.example>:\n" + BounceText + "\n\n"
	if string(b) != want {
		t.Errorf("bounce/100 = %q\nwant %q", b, want)
	}
	for _, p := range []string{"local/8/100", "remote/8/100"} {
		if _, err := os.Stat(filepath.Join(q, p)); !os.IsNotExist(err) {
			t.Errorf("%s still there", p)
		}
	}
	if code, _, errs := run(t, root, "bounce", "100"); code != ExitNotRunning || errs != "" {
		// Bouncing again finds nothing pending: no paragraph, no change.
		t.Errorf("second bounce: exit %d, %q", code, errs)
	}
	if b2, _ := os.ReadFile(filepath.Join(q, "bounce", "100")); string(b2) != want {
		t.Errorf("second bounce changed bounce/100: %q", b2)
	}
	if code, _, errs := run(t, root, "bounce", "77"); code != ExitUsage || !strings.Contains(errs, "message 77 is not in the queue") {
		t.Errorf("bounce 77: exit %d, %q", code, errs)
	}
	startFake(t, root)
	if code, _, errs := run(t, root, "bounce", "100"); code != ExitTemp || !strings.Contains(errs, "qmail-install creates it") {
		t.Errorf("bounce while running: exit %d, %q", code, errs)
	}
}

func FuzzParseStatus(f *testing.F) {
	f.Add([]byte("pid 12\ngeneration 3\nholdremote a b\n"))
	f.Add([]byte("generation"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := ParseStatus(b)
		_ = s.Generation()
		_ = s.Flag("holdremote")
		agrees(s, "holdremote", hold.Parse(b))
	})
}

// qmailctl boot holds remote delivery, unless a network hook released it
// since the machine booted (the link came up before qmail did).
func TestBoot(t *testing.T) {
	for _, tc := range []struct {
		name  string
		want  string // linkwant's contents, "" for none
		mtime time.Time
		held  bool
	}{
		{"no hook yet", "", time.Now(), true},
		{"released since boot", "release\n", time.Now(), false},
		{"held since boot", "hold\n", time.Now(), true},
		{"released in an earlier boot", "release\n", time.Unix(0, 0), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := makeTree(t)
			if tc.want != "" {
				p := filepath.Join(root, hold.LinkWantFile)
				queuetest.WriteFile(t, p, []byte(tc.want))
				os.Chtimes(p, tc.mtime, tc.mtime)
			}
			code, out, errs := run(t, root, "boot")
			_, held := readFlag(t, root, "holdremote")
			if held != tc.held {
				t.Errorf("held %v, want %v (exit %d, %q, %q)", held, tc.held, code, out, errs)
			}
			if !tc.held && (code != ExitOK || !strings.Contains(out, "not held")) {
				t.Errorf("exit %d, stdout %q", code, out)
			}
		})
	}
	// A link comes up while boot looks: a hook that does not take the
	// control directory's lock (an older qmailctl) records the release
	// and releases before boot's hold. Boot takes its hold back.
	root := makeTree(t)
	afterBootCheck = func() {
		queuetest.WriteFile(t, filepath.Join(root, hold.LinkWantFile), []byte("release\n"))
		hookApply(t, root, false)
	}
	code, out, errs := run(t, root, "boot")
	afterBootCheck = func() {}
	if _, held := readFlag(t, root, "holdremote"); held || !strings.Contains(out, "taken back") {
		t.Errorf("boot racing a release: held %v, exit %d, %q, %q", held, code, out, errs)
	}
	// Released since boot, but the admin holds everything: boot leaves
	// the hold and does not claim delivery is not held.
	root = makeTree(t)
	p := filepath.Join(root, hold.LinkWantFile)
	queuetest.WriteFile(t, p, []byte("release\n"))
	queuetest.WriteFile(t, filepath.Join(root, "control", "holdremote"), []byte("*\n"))
	code, out, _ = run(t, root, "boot")
	if _, held := readFlag(t, root, "holdremote"); !held || code != ExitOK || strings.Contains(out, "not held") || !strings.Contains(out, "held (all destinations)") {
		t.Errorf("boot with the admin's hold: held %v, exit %d, stdout %q", held, code, out)
	}
	// qmail-send already runs (qmail.service runs boot before a start
	// that then fails): no hold, which no link event would lift, and
	// exit 0 with the reason.
	for _, want := range []string{"", "release\n"} {
		root = makeTree(t)
		if want != "" {
			p := filepath.Join(root, hold.LinkWantFile)
			queuetest.WriteFile(t, p, []byte(want))
			old := time.Unix(0, 0)
			os.Chtimes(p, old, old)
		}
		fake := startFake(t, root)
		code, out, errs = run(t, root, "boot")
		if _, held := readFlag(t, root, "holdremote"); held || code != ExitOK || !strings.Contains(out, fmt.Sprintf("already running (pid %d)", fake.Process.Pid)) {
			t.Errorf("boot with qmail-send running (linkwant %q): held %v, exit %d, %q, %q", want, held, code, out, errs)
		}
	}
}

// An uplink's hook holds and releases everything while a VPN's hook holds
// its domains by name: releasing the hold of everything leaves the
// domains held, and only releasing them by name frees them.
func TestHoldAllKeepsDomains(t *testing.T) {
	root := makeTree(t)
	runHoldSteps(t, root, []holdStep{
		{true, []string{"corp.example", ".corp.example"}, "corp.example\n.corp.example\n"},
		{true, nil, "*\ncorp.example\n.corp.example\n"},
		{false, nil, "corp.example\n.corp.example\n"},
		{false, nil, "corp.example\n.corp.example\n"}, // no hold of everything to release
		{true, nil, "*\ncorp.example\n.corp.example\n"},
		{true, nil, "*\ncorp.example\n.corp.example\n"},
		{false, nil, "corp.example\n.corp.example\n"},
		{false, []string{"corp.example", ".corp.example"}, ""},
		{true, nil, "*\n"},
		{false, nil, ""},
		// The VPN comes up while the uplink is down: its domains leave the
		// by-name list, everything stays held until the uplink is back.
		{true, []string{"corp.example"}, "corp.example\n"},
		{true, nil, "*\ncorp.example\n"},
		{false, []string{"corp.example"}, "*\n"},
		{false, nil, ""},
		// The VPN goes down while the uplink is down: its domains are
		// recorded below the "*", and the uplink's release leaves them.
		{true, nil, "*\n"},
		{true, []string{"corp.example"}, "*\ncorp.example\n"},
		{true, []string{"corp.example"}, "*\ncorp.example\n"},
		{false, nil, "corp.example\n"},
		{false, []string{"corp.example"}, ""},
	})
}

// holdStep is one change of control/holdremote and the file it must leave
// ("" = no file).
type holdStep struct {
	hold    bool
	domains []string
	file    string
}

// runHoldSteps makes each change in turn and checks the file after it.
func runHoldSteps(t *testing.T, root string, steps []holdStep) {
	t.Helper()
	dir := filepath.Join(root, "control")
	for i, st := range steps {
		if _, err := EditHold(dir, hold.RemoteFile, st.hold, st.domains); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		got, _ := readFlag(t, root, hold.RemoteFile)
		if got != st.file {
			t.Fatalf("step %d (hold %v %v): file %q, want %q", i, st.hold, st.domains, got, st.file)
		}
	}
}

// TestHoldEditBOMAndTrailingDot: a flag saved with a byte order mark
// (Notepad) is edited as qmail-send reads it (release remote named no line,
// said "unchanged" and left the domain held), and a domain written with a
// trailing dot is the domain (recorded with it, it held nothing).
func TestHoldEditBOMAndTrailingDot(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, hold.RemoteFile)
	os.WriteFile(p, []byte("\xef\xbb\xbfexample.com\nother.example\n"), 0o644)
	if _, err := EditHold(dir, hold.RemoteFile, false, []string{"example.com"}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "other.example\n" {
		t.Errorf("after release of example.com: %q", b)
	}
	if _, err := EditHold(dir, hold.RemoteFile, true, []string{"plain.example.", "Bücher.test."}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "other.example\nplain.example\nxn--bcher-kva.test\n" {
		t.Errorf("after hold of domains with a trailing dot: %q", b)
	}
	h, err := hold.Read(dir, hold.RemoteFile)
	if err != nil || !h.HoldsAddress("u@plain.example") || !h.HoldsAddress("u@bücher.test.") {
		t.Errorf("held: %+v %v", h, err)
	}
}

// An address literal is held and released by its address, whatever its
// spelling: qmailctl status shows "[::1]" for a hold of "[IPv6:0:0::1]",
// and releasing what status shows must work.
func TestHoldLiteralAnySpelling(t *testing.T) {
	root := makeTree(t)
	dir := filepath.Join(root, "control")
	runHoldSteps(t, root, []holdStep{
		{true, []string{"[IPv6:0:0::1]"}, "[::1]\n"},
		{true, []string{"[IPv6:::1]", "[::1]"}, "[::1]\n"},
		{false, []string{"[IPv6:0:0:0:0:0:0:0:1]"}, ""},
		{true, []string{"[IPv6:::ffff:127.0.0.1]", "Corp.Example"}, "[127.0.0.1]\ncorp.example\n"},
		{false, []string{"[127.0.0.1]", "CORP.example"}, ""},
		// qmail-remote delivers mail to u@127.0.0.1 to the address
		// 127.0.0.1: the bare dotted quad is that literal.
		{true, []string{"127.0.0.1"}, "[127.0.0.1]\n"},
		{true, []string{"[127.0.0.1]"}, "[127.0.0.1]\n"},
		{false, []string{"127.0.0.1"}, ""},
	})
	if _, err := EditHold(dir, hold.RemoteFile, true, []string{"[127.0.0.1]"}); err != nil {
		t.Fatal(err)
	}
	h, err := hold.Read(dir, hold.RemoteFile)
	if err != nil || !h.HoldsAddress("u@127.0.0.1") {
		t.Errorf("a hold of [127.0.0.1] does not hold u@127.0.0.1: %+v %v", h, err)
	}
	if _, err := EditHold(dir, hold.RemoteFile, false, []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	// A hand-written bare dotted quad holds the literal.
	if err := os.WriteFile(filepath.Join(dir, hold.RemoteFile), []byte("127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if h, err = hold.Read(dir, hold.RemoteFile); err != nil || !h.HoldsAddress("u@[127.0.0.1]") || h.Describe() != "held for [127.0.0.1]" {
		t.Errorf("a line 127.0.0.1: %+v %v", h, err)
	}
	// Leading zeros: qmail-remote (pkg/dnsmx) reads no such address, so
	// the literal is no domain, and the refusal says how to write it.
	_, err = EditHold(dir, hold.RemoteFile, true, []string{"[127.000.000.001]"})
	if err == nil || !strings.Contains(err.Error(), "write [127.0.0.1]") {
		t.Errorf("hold [127.000.000.001]: %v", err)
	}
	// A hand-written line in another spelling is released too.
	path := filepath.Join(dir, hold.RemoteFile)
	if err := os.WriteFile(path, []byte("[IPv6:0:0::1]\n other.example \n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := EditHold(dir, hold.RemoteFile, false, []string{"[::1]", "other.example"}); err != nil {
		t.Fatal(err)
	}
	if got, ok := readFlag(t, root, hold.RemoteFile); ok {
		t.Errorf("file left: %q", got)
	}
}

// control/holdlocal holds all local delivery whatever it says (qmail-send
// only asks whether it exists): a release removes it, even when a word or
// a domain was written into it by hand.
func TestReleaseLocalWithWords(t *testing.T) {
	root := makeTree(t)
	dir := filepath.Join(root, "control")
	path := filepath.Join(dir, hold.LocalFile)
	for _, content := range []string{"x.example\n", "# held for the move\nx.example\n", "hold\n", ""} {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		h, err := hold.Read(dir, hold.LocalFile)
		if err != nil || !h.All || h.Describe() != "held" {
			t.Errorf("%q: read %+v, %v", content, h, err)
		}
		res, err := EditHold(dir, hold.LocalFile, false, nil)
		if err != nil || !res.Changed || res.After.Set {
			t.Errorf("%q: release: %+v, %v", content, res, err)
		}
		if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%q: control/holdlocal left (%v)", content, err)
		}
	}
}

// A holdremote of junk lines only holds everything; holding a domain then
// must not turn it into a hold of that domain alone.
func TestHoldDomainUnderJunk(t *testing.T) {
	root := makeTree(t)
	dir := filepath.Join(root, "control")
	path := filepath.Join(dir, hold.RemoteFile)
	if err := os.WriteFile(path, []byte("hold it all please\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := EditHold(dir, hold.RemoteFile, true, []string{"corp.example"})
	if err != nil || res.Changed || !res.After.All {
		t.Fatalf("res %+v, err %v", res, err)
	}
	if got, _ := os.ReadFile(path); string(got) != "hold it all please\n" {
		t.Errorf("file %q", got)
	}
}

// TestStatusSeesDomainChange: qmail-send holds everything, the file now
// holds one domain and no HUP was sent: status warns, although both are
// "held".
func TestStatusSeesDomainChange(t *testing.T) {
	root := makeTree(t)
	startFake(t, root)
	if code, _, errs := run(t, root, "hold", "remote"); code != 0 {
		t.Fatalf("hold remote: exit %d, %s", code, errs)
	}
	queuetest.WriteFile(t, filepath.Join(root, "control", "holdremote"), []byte("good.example\n"))
	_, out, _ := run(t, root, "status")
	if !strings.Contains(out, `warning: qmail-send has not acted on control/holdremote yet (it reports holdremote "all")`) {
		t.Errorf("status:\n%s", out)
	}
}

// TestReleaseUnheldRetries: a release of a channel that was not held (the
// link came up without having been seen to go down) also sends ALRM, so
// that what failed meanwhile is retried now; a release of a held channel
// needs only the HUP.
func TestReleaseUnheldRetries(t *testing.T) {
	root := makeTree(t)
	startFake(t, root)
	for _, s := range []struct {
		args    []string
		signals int64 // HUP and ALRM handled
		retried bool
	}{
		{[]string{"release", "remote"}, 2, true},
		{[]string{"hold", "remote"}, 1, false},
		{[]string{"release", "remote"}, 1, false},
		{[]string{"release", "local"}, 2, true},
		{[]string{"hold", "remote", "a.example"}, 1, false},
		{[]string{"release", "remote", "b.example"}, 1, false}, // names a domain: no flush
	} {
		before, _ := ReadStatus(root)
		code, out, errs := run(t, root, s.args...)
		after, _ := ReadStatus(root)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s %s", s.args, code, out, errs)
		}
		if n := after.Generation() - before.Generation(); n != s.signals {
			t.Errorf("%v: qmail-send handled %d signals, want %d", s.args, n, s.signals)
		}
		if got := strings.Contains(out, "deferred deliveries retried now"); got != s.retried {
			t.Errorf("%v: stdout %q, retried %v, want %v", s.args, out, got, s.retried)
		}
	}
}

// TestHoldConfirmOutlivesOtherSignal: when the status qmailctl waited for
// came from another signal (a flush's ALRM handled before its HUP), the
// old flags it shows are not taken for a failed re-read: qmailctl signals
// again and gets its confirmation.
func TestHoldConfirmOutlivesOtherSignal(t *testing.T) {
	root := makeTree(t)
	startFake(t, root, "FAKE_SEND_SKIPHUP=1")
	code, out, errs := run(t, root, "hold", "remote")
	if st, _ := ReadStatus(root); code != 0 || st["holdremote"] != "all" {
		t.Fatalf("hold remote: exit %d, stdout %q stderr %q; sendstatus %v", code, out, errs, st)
	}
}

// TestHoldFlagModeIgnoresUmask: a hold flag written under a strict umask
// (root's 077 or 027) is still mode 0644: qmail-send, as qmails, must read
// it, and could neither apply it nor start with it unreadable.
func TestHoldFlagModeIgnoresUmask(t *testing.T) {
	root := makeTree(t)
	dir := filepath.Join(root, "control")
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	for _, doms := range [][]string{nil, {"corp.example"}} {
		os.Remove(filepath.Join(dir, hold.RemoteFile))
		if _, err := EditHold(dir, hold.RemoteFile, true, doms); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(filepath.Join(dir, hold.RemoteFile))
		if err != nil || st.Mode().Perm() != 0o644 {
			t.Errorf("hold %v: %v %v, want mode 0644", doms, st.Mode(), err)
		}
	}
	// A flag made by hand under that umask is made readable by a hold
	// that changes nothing in it.
	p := filepath.Join(dir, hold.RemoteFile)
	os.Remove(p)
	if err := os.WriteFile(p, []byte("1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if res, err := EditHold(dir, hold.RemoteFile, true, nil); err != nil || res.Changed {
		t.Fatalf("hold over a held flag: %+v %v", res, err)
	}
	if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("hand-made flag after hold: %v %v, want 0644", st.Mode(), err)
	}
}

// TestAppendBounceCutShort: a bounce paragraph whose write is cut short
// (a full disk; here the file size limit) is taken back, so that running
// qmailctl bounce again does not leave its first part before it.
func TestAppendBounceCutShort(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "1")
	first := []byte("<a@example.org>:\nfirst\n\n")
	if err := os.WriteFile(old, first, 0o600); err != nil {
		t.Fatal(err)
	}
	p := []byte("<b@example.org>:\n" + strings.Repeat("x", 3000) + "\n\n")
	var errOld, errNew error
	testutil.WithFileSizeLimit(t, uint64(len(first)+1000), func() {
		errOld = appendBounce(dir, old, p)
		errNew = appendBounce(dir, filepath.Join(dir, "2"), p)
	})
	if errOld == nil || errNew == nil {
		t.Fatalf("writes past the limit succeeded: %v, %v", errOld, errNew)
	}
	if got, _ := os.ReadFile(old); string(got) != string(first) {
		t.Errorf("bounce/1 is %d bytes after the failure, want its %d from before", len(got), len(first))
	}
	if _, err := os.Stat(filepath.Join(dir, "2")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a new bounce file is left after the failure (%v)", err)
	}
}

// TestAgeInTheFuture: a date ahead of the clock (the clock went back, a
// laptop with a bad real-time clock) is shown as such, not as "0s": such
// a message waits for the clock to catch up.
func TestAgeInTheFuture(t *testing.T) {
	for _, tc := range []struct {
		d        time.Duration
		age, ago string
	}{
		{90 * time.Second, "1m30s", "1m30s ago"},
		{-300 * time.Millisecond, "0s", "0s ago"},
		{-90 * time.Second, "-1m30s", "1m30s in the future"},
		{-26 * time.Hour, "-1d2h", "1d2h in the future"},
		// A file dated 2446 (ext4's last second): Sub saturates to the
		// least Duration, which is its own negation (age recursed until
		// the stack overflowed).
		{time.Unix(1700000000, 0).Sub(time.Unix(15032385535, 0)), "-106751d23h", "106751d23h in the future"},
	} {
		if got := age(tc.d); got != tc.age {
			t.Errorf("age(%v) = %q, want %q", tc.d, got, tc.age)
		}
		if got := ago(tc.d); got != tc.ago {
			t.Errorf("ago(%v) = %q, want %q", tc.d, got, tc.ago)
		}
	}
}

// TestSinceFlagInTheFuture: a flag file dated ahead of the clock is said
// to be in the future both when qmail-send dates the hold ("last changed")
// and when the flag's own time does ("flag written"); the first did not.
func TestSinceFlagInTheFuture(t *testing.T) {
	path := filepath.Join(t.TempDir(), hold.RemoteFile)
	if err := os.WriteFile(path, []byte("a.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1700000000, 0).Add(time.Hour)
	c := &cmd{now: func() time.Time { return now }}
	st := Status{"since-remote": "1700000000"}
	for _, tc := range []struct {
		mtime time.Time
		st    Status
		want  string
	}{
		{now.Add(90 * time.Minute), st, " since " + qdate.Qread(time.Unix(1700000000, 0)) + " (for 1h0m)" +
			"; control/holdremote last changed " + qdate.Qread(now.Add(90*time.Minute)) + " (1h30m in the future)"},
		{now.Add(-10 * time.Minute), st, " since " + qdate.Qread(time.Unix(1700000000, 0)) + " (for 1h0m)" +
			"; control/holdremote last changed " + qdate.Qread(now.Add(-10*time.Minute))},
		{now.Add(90 * time.Minute), nil, " (flag written " + qdate.Qread(now.Add(90*time.Minute)) + ", 1h30m in the future)"},
	} {
		if err := os.Chtimes(path, tc.mtime, tc.mtime); err != nil {
			t.Fatal(err)
		}
		if got := c.since(tc.st, "remote", path); got != tc.want {
			t.Errorf("since (flag %v):\n got %q\nwant %q", tc.mtime, got, tc.want)
		}
	}
}

// TestStatusExiting: a qmail-send finishing after TERM is not "running",
// and a hold or release it confirms says that nothing starts before the
// next start (status said "running" and the change was "confirmed").
// TestStatusHoldLogUnreadable: a qmail-send that cannot read its hold log
// bounces nothing for its age, and its hold start may be later than the
// hold's: qmailctl status says so (QA life).
func TestStatusHoldLogUnreadable(t *testing.T) {
	root := makeTree(t)
	fake := startFakeQuiet(t, root)
	queuetest.WriteFile(t, filepath.Join(root, StatusFile),
		[]byte(fmt.Sprintf("pid %d\ngeneration 0\nholdlocal no\nholdremote no\nsince-local 0\nsince-remote 0\nholdlog-unreadable yes\n", fake.Process.Pid)))
	_, out, _ := run(t, root, "status")
	if !strings.Contains(out, "warning: qmail-send cannot read queue/bounce/"+sched.HoldLogName+": no message is bounced for its age until it can") {
		t.Errorf("status:\n%s", out)
	}
}

func TestStatusExiting(t *testing.T) {
	root := makeTree(t)
	startFake(t, root, "FAKE_SEND_EXITING=1")
	code, out, _ := run(t, root, "status")
	if !strings.Contains(out, "qmail-send: exiting (TERM), pid ") || strings.Contains(out, "running") {
		t.Errorf("status (exit %d):\n%s", code, out)
	}
	code, out, errs := run(t, root, "hold", "remote")
	if code != ExitOK || !strings.Contains(out, "confirmed, but it is exiting: nothing starts until the next start") {
		t.Errorf("hold remote: exit %d, %q %q", code, out, errs)
	}
	code, out, errs = run(t, root, "flush")
	if code != ExitOK || !strings.Contains(out, "confirmed, but it is exiting: nothing starts until the next start") || strings.Contains(out, "due now") {
		t.Errorf("flush: exit %d, %q %q", code, out, errs)
	}
}

// TestArgumentErrors: a command line qmailctl cannot use says why (it
// printed the bare usage for most), and ids are read one way everywhere.
func TestArgumentErrors(t *testing.T) {
	root := makeTree(t)
	queuetest.WriteFile(t, filepath.Join(root, MutexFile), nil)
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"hold", "0"}, `hold "0": not remote, local, from, to or a message id`},
		{[]string{"hold", "-5"}, `hold "-5": not remote, local, from, to or a message id`},
		{[]string{"release", "abc"}, `release "abc": not remote, local, from, to or a message id`},
		{[]string{"status", "extra"}, "status takes no arguments"},
		{[]string{"flush", "now"}, "flush takes no arguments"},
		{[]string{"boot", "x"}, "boot takes no arguments"},
		{[]string{"-x", "status"}, `unknown option "-x"`},
		{[]string{"-t"}, "-t needs a number of seconds"},
		{[]string{"-tx", "status"}, `bad timeout "x"`},
		{[]string{"delete", "0"}, `not a message id: "0"`},
		{[]string{"queue", "1a"}, `not a message id: "1a"`},
		{nil, "no command"},
		{[]string{"hold"}, "hold needs remote, local, from, to or message ids"},
		{[]string{"hold", "remote", "off"}, `not a domain: "off" (a word for off`},
	} {
		code, _, errs := run(t, root, tc.args...)
		if code != ExitUsage || !strings.Contains(errs, tc.err) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", tc.args, code, errs, ExitUsage, tc.err)
		}
	}
	// -- ends the options, -t takes its value attached too, and an id with
	// leading zeros is the id (queue took it, hold did not).
	for _, args := range [][]string{{"--", "status"}, {"-t1", "status"}} {
		if code, out, errs := run(t, root, args...); code != ExitNotRunning || !strings.Contains(out, "qmail-send: not running") {
			t.Errorf("%q: exit %d, %q %q", args, code, out, errs)
		}
	}
	if code, _, errs := run(t, root, "hold", "0012"); code != ExitUsage || !strings.Contains(errs, "message 12 is not in the queue") {
		t.Errorf("hold 0012: exit %d, %q", code, errs)
	}
}

// TestHoldDomainOnFileOfNoDomain: holding a domain while control/holdremote
// names no domain (a hand-written "off") leaves the file alone and says the
// domain is not recorded (it said the domain stayed held after a release).
func TestHoldDomainOnFileOfNoDomain(t *testing.T) {
	root := makeTree(t)
	queuetest.WriteFile(t, filepath.Join(root, MutexFile), nil)
	p := filepath.Join(root, "control", hold.RemoteFile)
	if err := os.WriteFile(p, []byte("off\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, errs := run(t, root, "hold", "remote", "c.example")
	if !strings.Contains(errs, "which names no domain; c.example is not recorded in it") {
		t.Errorf("stderr %q", errs)
	}
	if b, _ := os.ReadFile(p); string(b) != "off\n" {
		t.Errorf("file %q", b)
	}
}

// TestHoldDomainOnEmptyFile: holding a domain while control/holdremote is
// an empty file (touch), which holds everything, keeps everything held: the
// domain goes below a "*" line (it became the first line, and every other
// destination was released).
func TestHoldDomainOnEmptyFile(t *testing.T) {
	root := makeTree(t)
	queuetest.WriteFile(t, filepath.Join(root, MutexFile), nil)
	p := filepath.Join(root, "control", hold.RemoteFile)
	for _, old := range []string{"", "\xef\xbb\xbf"} {
		if err := os.WriteFile(p, []byte(old), 0o644); err != nil {
			t.Fatal(err)
		}
		run(t, root, "hold", "remote", "c.example")
		b, _ := os.ReadFile(p)
		if string(b) != "*\nc.example\n" {
			t.Errorf("file %q after hold of c.example on %q, want %q", b, old, "*\nc.example\n")
		}
		if f := hold.ParseFile(hold.RemoteFile, b); !f.All || len(f.Domains) != 1 {
			t.Errorf("%q: %+v, want everything held and c.example recorded", old, f)
		}
	}
}

// failWriter fails every write, as a full disk or a closed pipe does.
type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }

// TestQueueWriteError: qmailctl queue says so and exits 111 when its
// listing cannot be written (it exited 0 with nothing said), as
// qmail-qread does.
func TestQueueWriteError(t *testing.T) {
	root := makeTree(t)
	q := filepath.Join(root, "queue")
	queuetest.Add(t, q, queuetest.Msg{ID: 100, Birth: time.Now(), Body: "hello\n", Sender: "a@example.org",
		Remote: []queuetest.Rcpt{{Addr: "b@example.com"}}})
	var errb bytes.Buffer
	code := Main(root, []string{"queue"}, failWriter{}, &errb)
	if code != ExitTemp || !strings.Contains(errb.String(), "unable to write output: no space left on device") {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
}

// TestStatusWriteError: qmailctl status says so and exits 111 when its
// report cannot be written, as qmailctl queue does (it exited 3 or 0 with
// nothing said).
func TestStatusWriteError(t *testing.T) {
	root := makeTree(t)
	queuetest.Add(t, filepath.Join(root, "queue"), queuetest.Msg{ID: 100, Birth: time.Now(), Body: "hello\n", Sender: "a@example.org",
		Remote: []queuetest.Rcpt{{Addr: "b@example.com"}}})
	// queue ID too, and pid (with a stand-in qmail-send) (QA reg24).
	startFake(t, root)
	for _, args := range [][]string{{"status"}, {"queue", "100"}, {"pid"}} {
		var errb bytes.Buffer
		code := Main(root, args, failWriter{}, &errb)
		if code != ExitTemp || !strings.Contains(errb.String(), "unable to write output: no space left on device") {
			t.Errorf("%v: exit %d, stderr %q", args, code, errb.String())
		}
	}
}

// TestCheckoutNotATree: the bin/qmailctl of a source checkout after make
// (bin/qmail-queue there, no queue/) says the checkout was never
// installed and where an installed qmailctl is, with exit 111; status
// printed "remote: not held" for a tree that is not there.
func TestCheckoutNotATree(t *testing.T) {
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "bin"), 0755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "qmail-queue"), nil, 0755); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"status"}, {"hold", "remote"}, {"queue"}} {
		code, out, errs := run(t, root, args...)
		want := "qmailctl: " + root + " is no installed qmail tree (there is no " + filepath.Join(root, "queue") + ")"
		if code != ExitTemp || out != "" || !strings.HasPrefix(errs, want) || !strings.Contains(errs, "run/bin/qmailctl") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errs)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "control")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("control/ made in a checkout: %v", err)
	}
	if code, out, _ := run(t, root, "-h"); code != ExitOK || out == "" {
		t.Errorf("-h in a checkout: exit %d, stdout %q", code, out)
	}
	if code, _, errs := run(t, root, "bogus"); code != ExitUsage || !strings.Contains(errs, `unknown command "bogus"`) || strings.Contains(errs, "Life with qmail") {
		t.Errorf("unknown command in a checkout: exit %d, stderr %q", code, errs)
	}
	// A command of Life with qmail's qmailctl script is pointed to what
	// does it here (QA rlwq).
	for verb, hint := range map[string]string{"stat": "qmailctl status", "doqueue": "qmailctl flush", "stop": "svc -d", "hup": "qmailctl reload"} {
		code, _, errs := run(t, root, verb)
		if code != ExitUsage || !strings.Contains(errs, `unknown command "`+verb+`"`) || !strings.Contains(errs, "not Life with qmail's script: for its "+verb+", ") || !strings.Contains(errs, hint) {
			t.Errorf("%s: exit %d, stderr %q; want a hint naming %q", verb, code, errs, hint)
		}
	}
}

// TestDeleteUnsendableBounceOffline: a delete while qmail-send is
// stopped of a message whose bounce of earlier failures can never be
// made (its message file is missing) removes bounce/ID and says so, as
// qmail-send does for a delete while it runs. It said the message would
// be removed at the next start, where it stayed for good (QA reg24).
func TestDeleteUnsendableBounceOffline(t *testing.T) {
	root := makeTree(t)
	q := filepath.Join(root, "queue")
	queuetest.WriteFile(t, filepath.Join(root, MutexFile), nil)
	queuetest.Add(t, q, queuetest.Msg{ID: 47, Birth: time.Now(), Sender: "b@example.org",
		Remote: []queuetest.Rcpt{{Addr: "w@y.example"}}, Bouncing: true, NoMess: true})
	// With its message file, the bounce stays for qmail-send.
	queuetest.Add(t, q, queuetest.Msg{ID: 48, Birth: time.Now(), Body: "x", Sender: "b@example.org",
		Remote: []queuetest.Rcpt{{Addr: "w@y.example"}}, Bouncing: true})
	code, out, errs := run(t, root, "delete", "47", "48")
	want := "message 47: 1 recipient will not be delivered; qmail-send is not running and removes the message at its next start; " +
		"its earlier failures are not reported (message file missing: bounce/47 removed)\n"
	if code != ExitNotRunning || !strings.Contains(out, want) {
		t.Fatalf("exit %d, stdout %q, stderr %q; want %q", code, out, errs, want)
	}
	if strings.Contains(out, "message 48: 1 recipient will not be delivered;") && strings.Contains(out, "bounce/48") {
		t.Errorf("message 48's bounce named: %q", out)
	}
	if _, err := os.Stat(filepath.Join(q, "bounce", "47")); !os.IsNotExist(err) {
		t.Errorf("bounce/47 still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(q, "bounce", "48")); err != nil {
		t.Errorf("bounce/48: %v", err)
	}
}
