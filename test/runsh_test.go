package test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/test/harness"
)

// runShTree is a copy of the checkout (scripts/run.sh and bin/) that
// scripts/run.sh runs from, as an ordinary user (nobody when the tests
// run as root: run.sh as root would create qmail's users).
type runShTree struct {
	top, root string   // the copy; the tree run.sh makes (./run or RUNROOT)
	uid, gid  int      // whom run.sh runs as
	name      string   // that user's name ($me in run.sh)
	env       []string // run.sh's environment
}

// newRunShTree copies run.sh into a fresh checkout whose bin/ is the test
// build, listening on listen; with runroot, the tree is RUNROOT=DIR.
// Cleanup runs run.sh stop and kills whatever it left running.
func newRunShTree(t *testing.T, listen string, runroot bool) *runShTree {
	t.Helper()
	bin := harness.Build(t)
	for _, p := range []string{"qmail-install", "qmail-start", "qmail-smtpd", "qmail-send", "qmail-lspawn"} {
		harness.RequireBin(t, p)
	}
	mod, err := harness.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile(filepath.Join(mod, "scripts", "run.sh"))
	if err != nil {
		t.Fatal(err)
	}
	r := &runShTree{uid: os.Getuid(), gid: os.Getgid()}
	if r.uid == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			t.Skip("no user nobody to run scripts/run.sh as: ", err)
		}
		r.uid, _ = strconv.Atoi(u.Uid)
		r.gid, _ = strconv.Atoi(u.Gid)
	}
	u, err := user.LookupId(strconv.Itoa(r.uid))
	if err != nil {
		t.Skip("no name for uid ", r.uid, ": ", err)
	}
	r.name = u.Username
	r.top = harness.TempRoot(t)
	for _, d := range []string{"scripts", "runroot"} {
		if err := os.Mkdir(filepath.Join(r.top, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(r.top, "scripts", "run.sh"), script, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(bin, filepath.Join(r.top, "bin")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{r.top, filepath.Join(r.top, "scripts"), filepath.Join(r.top, "scripts", "run.sh"), filepath.Join(r.top, "runroot")} {
		if err := os.Lchown(p, r.uid, r.gid); err != nil {
			t.Fatal(err)
		}
	}
	r.env = []string{"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "LISTEN=" + listen}
	r.root = filepath.Join(r.top, "run")
	if runroot {
		r.root = filepath.Join(r.top, "runroot", "tree")
		r.env = append(r.env, "RUNROOT="+r.root)
	}
	t.Cleanup(func() {
		// A test that made no tree (a start refused up front) has
		// nothing to stop, and run.sh says so.
		if out, err := r.script("stop"); err != nil && !strings.HasPrefix(out, "no tree at ") {
			t.Errorf("run.sh stop: %v\n%s", err, out)
		}
		r.kill()
	})
	return r
}

// listenAddr returns a loopback address for run.sh's LISTEN, which is
// named before qmail-smtpd binds it: a port free now and below the
// kernel's range of ephemeral ports (net.ipv4.ip_local_port_range), which
// no connection gets as its source port and no bind to port 0 is given,
// so it stays free until qmail-smtpd binds it, and again for a restart.
func listenAddr(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	f := strings.Fields(string(b))
	if err != nil || len(f) != 2 {
		t.Fatalf("ip_local_port_range: %q, %v", b, err)
	}
	end, err := strconv.Atoi(f[0]) // the first ephemeral port
	if err != nil {
		t.Fatalf("ip_local_port_range: %q: %v", b, err)
	}
	start := max(1024, end/2)
	if end-start < 1000 {
		// Hardly a port below the range: one the kernel picks, which a
		// connection may take as its source port before run.sh binds it.
		t.Logf("ip_local_port_range %q: LISTEN on an ephemeral port", strings.TrimSpace(string(b)))
		start, end = 0, 1
	}
	for range 100 {
		addr := fmt.Sprintf("127.0.0.1:%d", start+rand.IntN(end-start))
		if l, err := net.Listen("tcp", addr); err == nil {
			addr = l.Addr().String()
			l.Close()
			return addr
		}
	}
	t.Fatalf("no free loopback port in %d-%d", start, end-1)
	return ""
}

// run runs a command as run.sh's user in the copy, with stdin, for at
// most two minutes, and returns its combined output.
func (r *runShTree) run(stdin []byte, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if os.Getuid() == 0 {
		args = append([]string{"setpriv", "--reuid=" + strconv.Itoa(r.uid), "--regid=" + strconv.Itoa(r.gid), "--clear-groups"}, args...)
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = r.env
	cmd.Dir = r.top
	cmd.Stdin = bytes.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// script runs scripts/run.sh arg.
func (r *runShTree) script(arg string) (string, error) {
	return r.run(nil, "sh", filepath.Join(r.top, "scripts", "run.sh"), arg)
}

// pid is the pid run.sh recorded in var/f, or 0.
func (r *runShTree) pid(f string) int {
	b, err := os.ReadFile(filepath.Join(r.root, "var", f))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0
	}
	return pid
}

// kill ends whatever run.sh stop left running (it waits 10 s for
// qmail-send): each daemon leads its own process group (setsid).
func (r *runShTree) kill() {
	for _, f := range []string{"start.pid", "smtpd.pid"} {
		if pid := r.pid(f); pid != 0 {
			syscall.Kill(-pid, syscall.SIGKILL)
		}
	}
}

// TestRunScriptPortInUseHint: when make run's qmail-smtpd finds its port
// taken, scripts/run.sh suggests the next port with a command that names
// the same tree: RUNROOT=DIR in the make run hint when one was given
// (without it, the suggested make run would start a second tree in ./run).
func TestRunScriptPortInUseHint(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test skipped under -short")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	listen := ln.Addr().String()

	for _, tc := range []struct {
		name    string
		runroot bool
	}{{"RUNROOT", true}, {"default root", false}} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRunShTree(t, listen, tc.runroot)
			if _, err := r.script("start"); err == nil {
				t.Fatalf("run.sh start with %s taken succeeded", listen)
			}
			// A line of an earlier run, which the log keeps: the next
			// failure must show only its own (QA: a stale "listening
			// on" line read as if the listener were up).
			stale := "qmail-smtpd: listening on a stale line of an earlier run\n"
			f, err := os.OpenFile(filepath.Join(r.root, "var", "qmail-smtpd.log"), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString(stale)
			f.Close()
			out, err := r.script("start")
			if strings.Contains(out, "stale line") {
				t.Errorf("run.sh start shows an earlier run's log line:\n%s", out)
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("run.sh start with %s taken: %v, want exit 1\n%s", listen, err, out)
			}
			rr := ""
			if tc.runroot {
				rr = " RUNROOT=" + r.root
			}
			// The port after the one taken (it suggested 2526 whatever
			// port was taken, that one too: QA rnonroot2).
			_, port, _ := net.SplitHostPort(listen)
			p, _ := strconv.Atoi(port)
			want := fmt.Sprintf("(another listener there? try another port: make run%s LISTEN=127.0.0.1:%d; make stop%s to stop the rest)\n", rr, p+1, rr)
			if !strings.Contains(out, "address already in use") || !strings.HasSuffix(out, want) {
				t.Errorf("run.sh start with %s taken:\n%s\nwant it to end with\n%s", listen, out, want)
			}
		})
	}
}

// lspawnArg is the first argument of the qmail-lspawn whose parent is
// qmail-start's pid start (waited for, bounded).
func lspawnArg(t *testing.T, start int) string {
	t.Helper()
	var arg string
	found := harness.Eventually(10*time.Second, func() bool {
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if err != nil {
				continue
			}
			// pid (comm) state ppid ...: comm may hold blanks, so split
			// after its closing parenthesis.
			s := string(st)
			i := strings.LastIndexByte(s, ')')
			if i < 0 || !strings.HasSuffix(s[:i], "(qmail-lspawn") {
				continue
			}
			f := strings.Fields(s[i+1:])
			if len(f) < 2 || f[1] != strconv.Itoa(start) {
				continue
			}
			cl, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if err != nil {
				continue
			}
			args := strings.Split(strings.TrimSuffix(string(cl), "\x00"), "\x00")
			if len(args) != 2 {
				t.Fatalf("qmail-lspawn (pid %d) runs with %q, want one argument", pid, args)
			}
			arg = args[1]
			return true
		}
		return false
	})
	if !found {
		t.Fatalf("no qmail-lspawn under qmail-start (pid %d)", start)
	}
	return arg
}

// TestRunScriptDefaultDelivery: make run passes control/defaultdelivery to
// qmail-start as the rc script and the systemd unit do (qmail-control(5)),
// and ./Maildir/ when the file is missing or empty; the start message says
// where mail lands, and mail to the user lands there. Before, run.sh always
// passed ./Maildir/.
func TestRunScriptDefaultDelivery(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test skipped under -short")
	}
	// A free loopback port for qmail-smtpd (run.sh needs one; the test
	// does not use it).
	r := newRunShTree(t, listenAddr(t), true)
	home := filepath.Join(r.root, "home", r.name)
	ctl := filepath.Join(r.root, "control", "defaultdelivery")

	running := false
	for _, tc := range []struct {
		name    string
		exists  bool
		content string
		want    string // qmail-lspawn's argument
		lands   string // the start message's "lands in:"
	}{
		{"missing", false, "", "./Maildir/", filepath.Join(home, "Maildir", "new") + "/"},
		{"mbox", true, "./Mailbox\n", "./Mailbox", filepath.Join(home, "Mailbox") + " (an mbox file)"},
		{"empty", true, "", "./Maildir/", filepath.Join(home, "Maildir", "new") + "/"},
		{"two lines", true, "./Mailbox\n./Maildir/\n", "./Mailbox\n./Maildir/", home + ", as the lines of " + ctl + " say"},
		// A tool of the tree's bin/ by its name, as qmail's start
		// scripts let .qmail programs find them (PATH had no bin/).
		{"program", true, "|preline cat >> ./Progbox\n", "|preline cat >> ./Progbox", home + ", as " + ctl + " (|preline cat >> ./Progbox) says"},
		// Not a regular file: no start, and a FIFO does not block it.
		{"fifo", true, "", "", ""},
		{"directory", true, "", "", ""},
		// Larger than one argument can be (sparse: read through, 1 GB
		// would take a while), and one byte larger (131072 bytes: with
		// its NUL, more than exec takes).
		{"too large", true, "", "", ""},
		{"one byte too large", true, "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if running {
				// The tree exists from the first start on.
				if out, err := r.script("stop"); err != nil {
					t.Fatalf("run.sh stop: %v\n%s", err, out)
				}
				running = false
			}
			if tc.name == "fifo" || tc.name == "directory" || strings.HasSuffix(tc.name, "too large") {
				os.Remove(ctl)
				var err error
				why := "not a readable regular file"
				switch tc.name {
				case "fifo":
					err = syscall.Mkfifo(ctl, 0o644)
				case "directory":
					err = os.Mkdir(ctl, 0o755)
				case "one byte too large":
					why = "larger than 131071 bytes"
					err = os.WriteFile(ctl, bytes.Repeat([]byte("x"), 128<<10), 0o644)
				default:
					why = "larger than 131071 bytes"
					err = os.WriteFile(ctl, nil, 0o644)
					if err == nil {
						err = os.Truncate(ctl, 1<<30)
					}
				}
				if err != nil {
					t.Fatal(err)
				}
				defer os.Remove(ctl)
				out, err := r.script("start")
				if err == nil || !strings.Contains(out, "unable to read "+ctl+": "+why) {
					t.Errorf("run.sh start with a %s as defaultdelivery: %v\n%s", tc.name, err, out)
				}
				return
			}
			if tc.exists {
				if err := os.WriteFile(ctl, []byte(tc.content), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Chown(ctl, r.uid, r.gid); err != nil {
					t.Fatal(err)
				}
			}
			out, err := r.script("start")
			if err != nil {
				t.Fatalf("run.sh start: %v\n%s", err, out)
			}
			running = true
			if got := lspawnArg(t, r.pid("start.pid")); got != tc.want {
				t.Errorf("qmail-lspawn %q, want %q", got, tc.want)
			}
			if want := "lands in: " + tc.lands + "\n"; !strings.Contains(out, want) {
				t.Errorf("run.sh start says:\n%s\nwant a line ending %q", out, want)
			}
			mbox := map[string]string{"mbox": "Mailbox", "program": "Progbox"}[tc.name]
			if mbox == "" {
				return
			}
			// The mail itself lands in the mbox (the program's: preline
			// puts the Return-Path line before the message).
			msg := "Subject: defaultdelivery " + tc.name + "\n\nhello\n"
			if out, err := r.run([]byte(msg), filepath.Join(r.root, "bin", "sendmail"), r.name+"@localhost"); err != nil {
				t.Fatalf("sendmail: %v\n%s", err, out)
			}
			mbox = filepath.Join(home, mbox)
			if !harness.Eventually(30*time.Second, func() bool {
				b, _ := os.ReadFile(mbox)
				return bytes.Contains(b, []byte("Subject: defaultdelivery "+tc.name)) && bytes.Contains(b, []byte("Return-Path: <"))
			}) {
				b, _ := os.ReadFile(filepath.Join(r.root, "var", "qmail-send.log"))
				t.Fatalf("no message in %s within 30s; qmail-send.log:\n%s", mbox, b)
			}
			if n := harness.MaildirCount(filepath.Join(home, "Maildir")); n != 0 {
				t.Errorf("%d messages in %s/Maildir as well", n, home)
			}
		})
	}
}

// TestRunScriptHoldsAtEveryStart: every start of make run holds remote
// delivery to all destinations, and a domain held by name stays held
// below the "*". It used to hold only when control/holdremote was
// missing, so a tree left holding one domain started with the rest
// released, while the start message said remote delivery was held.
func TestRunScriptHoldsAtEveryStart(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test skipped under -short")
	}
	r := newRunShTree(t, listenAddr(t), true)
	if out, err := r.script("start"); err != nil {
		t.Fatalf("run.sh start: %v\n%s", err, out)
	}
	ctl := filepath.Join(r.root, "bin", "qmailctl")
	for _, args := range [][]string{{"release", "remote"}, {"hold", "remote", "far.example"}} {
		if out, err := r.run(nil, append([]string{ctl}, args...)...); err != nil {
			t.Fatalf("qmailctl %q: %v\n%s", args, err, out)
		}
	}
	hold := filepath.Join(r.root, "control", "holdremote")
	if b, _ := os.ReadFile(hold); string(b) != "far.example\n" {
		t.Fatalf("holdremote before the restart: %q", b)
	}
	if out, err := r.script("stop"); err != nil {
		t.Fatalf("run.sh stop: %v\n%s", err, out)
	}
	out, err := r.script("start")
	if err != nil {
		t.Fatalf("run.sh start: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(hold); string(b) != "*\nfar.example\n" {
		t.Errorf("holdremote after the restart: %q, want every destination held and far.example kept", b)
	}
	if !strings.Contains(out, "remote delivery is held") {
		t.Errorf("run.sh start says:\n%s", out)
	}

	// A file that already holds everything in another spelling (the "1"
	// an older run.sh wrote) is kept, and the start goes on.
	if out, err := r.script("stop"); err != nil {
		t.Fatalf("run.sh stop: %v\n%s", err, out)
	}
	if err := os.WriteFile(hold, []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := r.script("start"); err != nil {
		t.Fatalf("run.sh start with holdremote \"1\": %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(hold); string(b) != "1\n" {
		t.Errorf("holdremote %q, want \"1\" kept", b)
	}
}

// TestRunScriptDefaultSignals: qmail-start and qmail-smtpd -listen started
// by run.sh (in the background of a non-interactive shell, which ignores
// SIGINT there) have SIGINT at its default, so that INT ends them as
// their pages say and the .qmail programs and qmail-queue runs of the tree
// do not inherit it ignored (QA kids, QA verify).
func TestRunScriptDefaultSignals(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test skipped under -short")
	}
	if exec.Command("env", "--default-signal=INT", "true").Run() != nil {
		t.Skip("this env has no --default-signal (coreutils before 8.31): run.sh leaves SIGINT as the shell set it")
	}
	r := newRunShTree(t, listenAddr(t), true)
	if out, err := r.script("start"); err != nil {
		t.Fatalf("run.sh start: %v\n%s", err, out)
	}
	defer r.script("stop")
	for _, f := range []string{"start.pid", "smtpd.pid"} {
		pid := r.pid(f)
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		found := false
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "SigIgn:"); ok {
				found = true
				mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
				if err != nil {
					t.Fatal(err)
				}
				if mask&(1<<(syscall.SIGINT-1)) != 0 {
					t.Errorf("%s (pid %d) ignores SIGINT: SigIgn %s", f, pid, strings.TrimSpace(v))
				}
			}
		}
		if !found {
			t.Fatalf("no SigIgn line in /proc/%d/status", pid)
		}
	}
}

// TestRunScriptOrphanedSend: after qmail-start was killed (kill -9, not
// make stop), its qmail-send gets TERM and finishes the delivery in
// progress before it exits. run.sh start then says so and fails: it said
// "hqmail is running" (the old qmail-send held the lock), and nothing ran
// once that one had gone (QA reg25).
func TestRunScriptOrphanedSend(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test skipped under -short")
	}
	r := newRunShTree(t, listenAddr(t), true)
	if out, err := r.script("start"); err != nil {
		t.Fatalf("run.sh start: %v\n%s", err, out)
	}
	// A delivery that takes a while: the user's .qmail runs sleep.
	home := filepath.Join(r.root, "home", r.name)
	dq := filepath.Join(home, ".qmail")
	if err := os.WriteFile(dq, []byte("|sleep 8\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chown(dq, r.uid, r.gid)
	if out, err := r.run([]byte("Subject: slow\n\nx\n"), filepath.Join(r.root, "bin", "sendmail"), r.name+"@localhost"); err != nil {
		t.Fatalf("sendmail: %v\n%s", err, out)
	}
	log := filepath.Join(r.root, "var", "qmail-send.log")
	if !harness.Eventually(30*time.Second, func() bool {
		b, _ := os.ReadFile(log)
		return bytes.Contains(b, []byte("starting delivery"))
	}) {
		b, _ := os.ReadFile(log)
		t.Fatalf("no delivery started within 30s:\n%s", b)
	}
	start := r.pid("start.pid")
	if start == 0 {
		t.Fatal("no start.pid")
	}
	smtpd := r.pid("smtpd.pid")
	syscall.Kill(start, syscall.SIGKILL)
	out, err := r.script("start")
	if err == nil || !strings.Contains(out, "still runs without the qmail-start that started it") {
		t.Errorf("run.sh start beside the stopping qmail-send: %v\n%s", err, out)
	}
	if strings.Contains(out, "hqmail is running") {
		t.Errorf("run.sh start said it runs:\n%s", out)
	}
	// Refused before anything was stopped: the listener still runs
	// (QA reg26), and stop names the qmail-send still finishing.
	if smtpd == 0 || syscall.Kill(smtpd, 0) != nil {
		t.Errorf("the refused start stopped qmail-smtpd (pid %d)", smtpd)
	}
	if out, err := r.script("stop"); err != nil || !strings.Contains(out, "still runs on "+r.root) ||
		!strings.Contains(out, "qmail-send: exiting") {
		t.Errorf("run.sh stop beside the stopping qmail-send: %v\n%s", err, out)
	}
}

// TestRunScriptRootRefusesUserTree (multi-instance QA): root's make run on
// a tree an ordinary user's make run made refuses and changes nothing. It
// re-ran qmail-install, which made the tree one of qmail's users (etc/ids
// rewritten, the tree's paths given to them) and left the mail the user
// had queued, in files of theirs, unreadable by qmail-send for good.
func TestRunScriptRootRefusesUserTree(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test skipped under -short")
	}
	if os.Getuid() != 0 {
		t.Skip("needs root: it checks what root's make run does to an ordinary user's tree")
	}
	r := newRunShTree(t, listenAddr(t), true)
	if out, err := r.script("start"); err != nil {
		t.Fatalf("run.sh start: %v\n%s", err, out)
	}
	if out, err := r.script("stop"); err != nil {
		t.Fatalf("run.sh stop: %v\n%s", err, out)
	}
	ids := filepath.Join(r.root, "etc", "ids")
	before, err := os.ReadFile(ids)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", filepath.Join(r.top, "scripts", "run.sh"), "start")
	cmd.Env, cmd.Dir = r.env, r.top
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Errorf("root's run.sh start on %s's tree succeeded:\n%s", r.name, out)
	}
	if !strings.Contains(string(out), "belongs to "+r.name) || !strings.Contains(string(out), "runuser -u "+r.name) {
		t.Errorf("root's run.sh start says:\n%s", out)
	}
	if after, _ := os.ReadFile(ids); !bytes.Equal(after, before) {
		t.Errorf("etc/ids changed:\n%s\nwas:\n%s", after, before)
	}
	// Named through a symbolic link of root's (regression QA: the owner
	// of the link was checked, and the tree taken over).
	link := filepath.Join(harness.TempRoot(t), "tree") // reachable by qmail's users
	if err := os.Symlink(r.root, link); err != nil {
		t.Fatal(err)
	}
	cmd = exec.CommandContext(ctx, "sh", filepath.Join(r.top, "scripts", "run.sh"), "start")
	cmd.Env, cmd.Dir = append(append([]string{}, r.env...), "RUNROOT="+link), r.top
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "belongs to "+r.name) {
		t.Errorf("root's run.sh start on %s's tree through a link: %v\n%s", r.name, err, out)
	}
	if after, _ := os.ReadFile(ids); !bytes.Equal(after, before) {
		t.Errorf("etc/ids changed:\n%s\nwas:\n%s", after, before)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(r.root, "queue"), &st); err != nil || int(st.Uid) != r.uid {
		t.Errorf("queue/ owner %d (%v), want %d", st.Uid, err, r.uid)
	}
}

// TestRunScriptHintsQuoteRoot: with a RUNROOT the shell would split (a
// space, a quote), the commands make run prints to be pasted quote it, and
// work as printed: the stop hint stops that tree (QA: "stop: make stop
// RUNROOT=/tmp/x y/z" named /tmp/x and a target y/z).
func TestRunScriptHintsQuoteRoot(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test skipped under -short")
	}
	r := newRunShTree(t, listenAddr(t), true)
	r.root = filepath.Join(r.top, "runroot", "it's a tree")
	env := r.env[:0:0]
	for _, e := range r.env {
		if !strings.HasPrefix(e, "RUNROOT=") {
			env = append(env, e)
		}
	}
	r.env = append(env, "RUNROOT="+r.root)
	out, err := r.script("start")
	if err != nil {
		t.Fatalf("run.sh start: %v\n%s", err, out)
	}
	quoted := "'" + strings.ReplaceAll(r.root, "'", `'\''`) + "'"
	qmailctl := "'" + strings.ReplaceAll(filepath.Join(r.root, "bin", "qmailctl"), "'", `'\''`) + "'"
	hint := func(prefix string) string {
		for _, l := range strings.Split(out, "\n") {
			if _, v, ok := strings.Cut(l, prefix); ok {
				return strings.TrimSpace(v)
			}
		}
		t.Fatalf("no %q line in run.sh start's output:\n%s", prefix, out)
		return ""
	}
	stop := hint("stop:")
	if want := "make stop RUNROOT=" + quoted; stop != want {
		t.Errorf("stop hint %q, want %q", stop, want)
	}
	if release, want := hint("release:"), qmailctl+" release remote"; release != want {
		t.Errorf("release hint %q, want %q", release, want)
	}

	// The hints as pasted into a shell, without RUNROOT in the
	// environment: make is a stand-in that puts its VAR=value arguments
	// into the environment and runs run.sh with its target.
	fake := filepath.Join(r.top, "fakebin")
	if err := os.Mkdir(fake, 0o755); err != nil {
		t.Fatal(err)
	}
	mk := "#!/bin/sh\nt=\nfor a; do case $a in *=*) export \"$a\" ;; *) t=$a ;; esac; done\nexec sh scripts/run.sh \"$t\"\n"
	if err := os.WriteFile(filepath.Join(fake, "make"), []byte(mk), 0o755); err != nil {
		t.Fatal(err)
	}
	withRoot := r.env
	defer func() { r.env = withRoot }() // for the cleanup's stop
	r.env = append(env, "PATH="+fake+":/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
	if got, err := r.run(nil, "sh", "-c", hint("status:")); err != nil || !strings.Contains(got, "qmail-send") {
		t.Errorf("the status command as printed: %v\n%s", err, got)
	}
	got, err := r.run(nil, "sh", "-c", stop)
	if err != nil || !strings.Contains(got, "stopped (tree kept in "+r.root+")") {
		t.Errorf("the stop hint as printed (%s): %v\n%s", stop, err, got)
	}
}
