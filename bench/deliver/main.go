// Command deliver benchmarks qmail-send: it installs a tree in a temporary
// root, and either
//
//	-mode deliver (default): queues -n messages (2,000) with qmail-queue,
//	  starts qmail-start and times the delivery of all of them into one
//	  Maildir; prints messages/s and qmail-send's peak RSS (VmHWM);
//	-mode rss: fabricates -queued preprocessed messages (100,000; remote,
//	  with holdremote set so nothing is sent), starts qmail-start and prints
//	  qmail-send's peak RSS once its start-up scan is done.
//
// It prints numbers and asserts nothing. Run as root or as any user:
//
//	go run ./bench/deliver [-mode rss] [-n N] [-queued N] [-bin DIR]
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"github.com/hqmail/hqmail/bench/procstat"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/qq"
)

func die(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "deliver: "+format+"\n", a...)
	os.Exit(1)
}

func main() {
	mode := flag.String("mode", "deliver", "deliver or rss")
	n := flag.Int("n", 2000, "messages to deliver (mode deliver)")
	queued := flag.Int("queued", 100000, "messages in the queue (mode rss)")
	bin := flag.String("bin", "", "directory with built programs (default: build ./cmd/...)")
	keep := flag.Bool("keep", false, "keep the temporary root")
	flag.Parse()

	binDir := *bin
	if binDir == "" {
		d, err := os.MkdirTemp("", "hqmail-bench-bin-")
		if err != nil {
			die("%v", err)
		}
		defer os.RemoveAll(d)
		os.Chmod(d, 0o755)
		for _, p := range []string{"qmail-install", "qmail-start", "qmail-send", "qmail-clean", "qmail-lspawn",
			"qmail-rspawn", "qmail-local", "qmail-queue", "qmail-getpw", "qmail-remote"} {
			c := exec.Command("go", "build", "-o", d+"/", "./cmd/"+p)
			c.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := c.CombinedOutput(); err != nil {
				die("build %s: %v\n%s", p, err, out)
			}
		}
		binDir = d
	}
	root, err := os.MkdirTemp("", "hqmail-bench-root-")
	if err != nil {
		die("%v", err)
	}
	os.Chmod(root, 0o755)
	if !*keep {
		defer os.RemoveAll(root)
	}
	args := []string{"-root", root, "-me", "bench.example"}
	if os.Geteuid() == 0 {
		args = append(args, "-uid-base", "64010")
	}
	if out, err := exec.Command(filepath.Join(binDir, "qmail-install"), args...).CombinedOutput(); err != nil {
		die("qmail-install: %v\n%s", err, out)
	}
	alias := filepath.Join(root, "alias")
	var st syscall.Stat_t
	syscall.Stat(alias, &st)
	dq := filepath.Join(alias, ".qmail-box")
	os.WriteFile(dq, []byte("./Maildir/\n"), 0o644)
	os.Chown(dq, int(st.Uid), int(st.Gid))

	switch *mode {
	case "deliver":
		benchDeliver(root, *n)
	case "rss":
		benchRSS(root, *queued)
	default:
		die("unknown mode %q", *mode)
	}
}

// system is a running qmail-start whose log is scanned.
type system struct {
	cmd   *exec.Cmd
	lines chan string
}

func start(root string) *system {
	cmd := exec.Command(filepath.Join(root, "bin", "qmail-start"), "./Maildir/")
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	out, err := cmd.StdoutPipe()
	if err != nil {
		die("%v", err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		die("qmail-start: %v", err)
	}
	s := &system{cmd: cmd, lines: make(chan string, 1024)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
	}()
	return s
}

// waitFor reads log lines until n lines contain sub or timeout passes.
func (s *system) waitFor(sub string, n int, timeout time.Duration) bool {
	deadline := time.After(timeout)
	for n > 0 {
		select {
		case l, ok := <-s.lines:
			if !ok {
				return false
			}
			if strings.Contains(l, sub) {
				n--
			}
		case <-deadline:
			return false
		}
	}
	return true
}

func (s *system) stop(root string) {
	if pid := sendPid(root); pid > 0 {
		syscall.Kill(pid, syscall.SIGTERM)
	}
	done := make(chan struct{})
	go func() {
		for range s.lines {
		}
		s.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
	}
}

func sendPid(root string) int {
	b, _ := os.ReadFile(filepath.Join(root, "queue", "lock", "sendmutex"))
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

func benchDeliver(root string, n int) {
	t0 := time.Now()
	for i := 0; i < n; i++ {
		msg := fmt.Sprintf("Subject: bench %d\n\nbody %d\n", i, i)
		_, err := qq.Queue(qq.Options{Root: root, Env: []string{"PATH=/usr/bin:/bin"}, IgnoreQMAILQUEUE: true},
			bytes.NewReader([]byte(msg)), &qq.Envelope{Sender: "box@bench.example", Recipients: []string{"box@bench.example"}})
		if err != nil {
			die("queue %d: %v", i, err)
		}
	}
	fmt.Printf("queued %d messages in %.2f s\n", n, time.Since(t0).Seconds())
	t1 := time.Now()
	s := start(root)
	if !s.waitFor("end msg ", n, 30*time.Minute) {
		die("not all %d messages finished", n)
	}
	el := time.Since(t1)
	hwm := procstat.VmHWM(sendPid(root))
	s.stop(root)
	fmt.Printf("delivered %d messages in %.2f s: %.1f messages/s\n", n, el.Seconds(), float64(n)/el.Seconds())
	fmt.Printf("qmail-send peak RSS (VmHWM): %d kB\n", hwm)
}

// benchRSS fabricates preprocessed remote messages (mess, info, remote
// files) and measures qmail-send's memory after its start-up scan.
func benchRSS(root string, n int) {
	q := filepath.Join(root, "queue")
	os.WriteFile(filepath.Join(root, "control", "holdremote"), []byte("1\n"), 0o644)
	uid, gid := -1, -1
	if os.Geteuid() == 0 {
		if ids, err := qhome.LoadIDs(root); err == nil {
			uid, gid = ids.Qmails.UID, ids.Qmail
		}
	}
	t0 := time.Now()
	for i := 0; i < n; i++ {
		id := uint64(1000000 + i)
		sp := strconv.FormatUint(id%qhome.Split, 10)
		name := strconv.FormatUint(id, 10)
		write := func(dir, content string, mode os.FileMode, owned bool) {
			p := filepath.Join(q, dir, sp, name)
			if err := os.WriteFile(p, []byte(content), mode); err != nil {
				die("%v", err)
			}
			if owned && uid >= 0 {
				os.Chown(p, uid, gid)
			}
		}
		write("mess", "Subject: x\n\nx\n", 0o644, false)
		write("info", "Fbox@bench.example\x00", 0o600, true)
		write("remote", "Tjoe@far.example\x00", 0o600, true)
	}
	fmt.Printf("fabricated %d queued remote messages in %.1f s\n", n, time.Since(t0).Seconds())
	t1 := time.Now()
	s := start(root)
	if !s.waitFor("hold: remote held, ", 1, 10*time.Minute) {
		die("qmail-send did not report the hold")
	}
	fmt.Printf("qmail-send scanned the queue in %.2f s\n", time.Since(t1).Seconds())
	time.Sleep(2 * time.Second)
	// Let the stale-message walk over mess/ run for a while as well.
	hwm := procstat.VmHWM(sendPid(root))
	s.stop(root)
	fmt.Printf("qmail-send peak RSS (VmHWM) with %d queued messages: %d kB\n", n, hwm)
}
