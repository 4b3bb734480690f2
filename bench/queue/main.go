// Command queue benchmarks qmail-queue: it installs a tree in a temporary
// root with the real qmail-install, queues messages of 2 KB through the real
// qmail-queue sequentially and from parallel writers, through one
// qmail-queue -m, and through the queue service qmail-queued (sequential and
// parallel callers in this process), and prints the rates
// next to the same disk's raw "create + write 1 KB + fsync + rename" rate
// measured in the same run. It reports numbers only; nothing is asserted.
//
//	go run ./bench/queue [-bin DIR] [-n 2000] [-p 8] [-size 2048] [-dir TMPDIR]
//
// -bin is a directory holding qmail-install, qmail-queue and qmail-queued (default: the
// module's bin/, as built by make).
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/qq"
)

func main() {
	bin := flag.String("bin", "bin", "directory with qmail-install and qmail-queue")
	n := flag.Int("n", 2000, "messages per run")
	par := flag.Int("p", 8, "parallel writers")
	size := flag.Int("size", 2048, "message size in bytes")
	dir := flag.String("dir", "", "where to make the temporary root (default $TMPDIR)")
	flag.Parse()
	if err := run(*bin, *dir, *n, *par, *size); err != nil {
		fmt.Fprintln(os.Stderr, "bench/queue:", err)
		os.Exit(1)
	}
}

func run(bin, dir string, n, par, size int) error {
	bin, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(dir, "hqmail-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	os.Chmod(tmp, 0o755)
	root := filepath.Join(tmp, "root")
	args := []string{"-root", root, "-me", "bench.example"}
	if os.Geteuid() == 0 {
		args = append(args, "-uid-base", "64010")
	}
	if out, err := exec.Command(filepath.Join(bin, "qmail-install"), args...).CombinedOutput(); err != nil {
		return fmt.Errorf("qmail-install: %v\n%s", err, out)
	}
	msg := makeMessage(size)
	env := []byte("Fbench@example.com\x00Tuser@example.org\x00\x00")
	// The machine may be shared: measure in interleaved rounds so that a
	// burst of outside load hits every figure alike.
	const rounds = 4
	var tRaw, tSpawn, tSeq, tPar, tMulti, tSvc, tSvcPar time.Duration
	stopService, err := startService(root)
	if err != nil {
		return err
	}
	defer stopService()
	for r := 0; r < rounds; r++ {
		k := n / rounds
		d, err := rawTime(filepath.Join(tmp, "raw"+strconv.Itoa(r)), k)
		if err != nil {
			return err
		}
		tRaw += d
		if d, err = spawnTime(k / 4); err != nil {
			return err
		}
		tSpawn += d
		if d, err = queueTime(root, tmp, msg, env, k, 1); err != nil {
			return err
		}
		tSeq += d
		if d, err = queueTime(root, tmp, msg, env, k, par); err != nil {
			return err
		}
		tPar += d
		if d, err = multiTime(root, msg, k); err != nil {
			return err
		}
		tMulti += d
		if d, err = serviceTime(root, msg, k, 1); err != nil {
			return err
		}
		tSvc += d
		if d, err = serviceTime(root, msg, k, par); err != nil {
			return err
		}
		tSvcPar += d
		// Keep the queue from growing across rounds.
		for _, q := range []string{"todo", "intd", "mess"} {
			os.RemoveAll(filepath.Join(root, "queue", q))
		}
		if out, err := exec.Command(filepath.Join(bin, "qmail-install"), args...).CombinedOutput(); err != nil {
			return fmt.Errorf("qmail-install: %v\n%s", err, out)
		}
	}
	m := float64(n / rounds * rounds)
	raw := m / tRaw.Seconds()
	spawn := m / 4 / tSpawn.Seconds()
	seq := m / tSeq.Seconds()
	pr := m / tPar.Seconds()
	multi := m / tMulti.Seconds()
	svc := m / tSvc.Seconds()
	svcPar := m / tSvcPar.Seconds()
	fmt.Printf("bench/queue: %d messages of %d bytes, filesystem of %s\n", n, size, tmp)
	fmt.Printf("  raw create+write 1KB+fsync+rename: %8.1f ops/s\n", raw)
	fmt.Printf("  fork+exec of /bin/true (context):  %8.1f ops/s\n", spawn)
	fmt.Printf("  qmail-queue sequential:            %8.1f msgs/s (%.0f%% of raw)\n", seq, 100*seq/raw)
	fmt.Printf("  qmail-queue %d parallel writers:    %8.1f msgs/s (%.0f%% of raw)\n", par, pr, 100*pr/raw)
	fmt.Printf("  qmail-queue -m sequential:         %8.1f msgs/s (%.0f%% of raw)\n", multi, 100*multi/raw)
	fmt.Printf("  qmail-queued sequential:           %8.1f msgs/s (%.0f%% of raw)\n", svc, 100*svc/raw)
	fmt.Printf("  qmail-queued %d parallel callers:   %8.1f msgs/s (%.0f%% of raw)\n", par, svcPar, 100*svcPar/raw)
	return nil
}

func makeMessage(size int) []byte {
	var b bytes.Buffer
	b.WriteString("From: bench@example.com\nTo: user@example.org\nSubject: benchmark\n\n")
	for b.Len() < size {
		b.WriteString("The quick brown fox jumps over the lazy dog, 0123456789.\n")
	}
	return b.Bytes()[:size]
}

// rawTime times n rounds of: create a temp file, write 1 KB, fsync, rename.
func rawTime(dir string, n int) (time.Duration, error) {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return 0, err
	}
	data := bytes.Repeat([]byte("x"), 1024)
	start := time.Now()
	for i := 0; i < n; i++ {
		tmp := filepath.Join(dir, "tmp."+strconv.Itoa(i))
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return 0, err
		}
		if _, err := f.Write(data); err != nil {
			return 0, err
		}
		if err := f.Sync(); err != nil {
			return 0, err
		}
		f.Close()
		if err := os.Rename(tmp, filepath.Join(dir, strconv.Itoa(i))); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// spawnTime times starting and waiting for /bin/true n times: the part of
// a qmail-queue run no implementation can avoid.
func spawnTime(n int) (time.Duration, error) {
	start := time.Now()
	for i := 0; i < n; i++ {
		if err := exec.Command("/bin/true").Run(); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// multiTime times n messages queued one after the other through one
// qmail-queue -m (qq.Session, as qmail-smtpd uses it): the same crash-safe
// work per message without a process start per message.
func multiTime(root string, msg []byte, n int) (time.Duration, error) {
	s := qq.NewSession(qq.Options{Root: root, IgnoreQMAILQUEUE: true})
	defer s.Close()
	env := &qq.Envelope{Sender: "bench@example.com", Recipients: []string{"user@example.org"}}
	start := time.Now()
	for i := 0; i < n; i++ {
		if _, _, err := s.Queue(bytes.NewReader(msg), env); err != nil {
			return 0, fmt.Errorf("qmail-queue -m: %v", err)
		}
	}
	return time.Since(start), nil
}

// startService starts root's qmail-queued (as qmailq when run by root, as
// qmail-start would) and waits for its socket.
func startService(root string) (stop func(), err error) {
	cmd := exec.Command(filepath.Join(root, "bin", "qmail-queued"))
	if os.Geteuid() == 0 {
		ids, err := qhome.LoadIDs(root)
		if err != nil {
			return nil, err
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{
			Uid: uint32(ids.Qmailq.UID), Gid: uint32(ids.Qmail)}}
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop = func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }
	sock := filepath.Join(root, qq.ServiceSocket)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			return stop, nil
		}
	}
	stop()
	return nil, fmt.Errorf("qmail-queued made no socket at %s", sock)
}

// serviceTime times n messages queued through qmail-queued from par
// callers in this process (qq.Queue, as sendmail does it): the same
// crash-safe work per message, no process start.
func serviceTime(root string, msg []byte, n, par int) (time.Duration, error) {
	env := &qq.Envelope{Sender: "bench@example.com", Recipients: []string{"user@example.org"}}
	return parallel(n, par, func() error {
		pid, err := qq.Queue(qq.Options{Root: root, IgnoreQMAILQUEUE: true}, bytes.NewReader(msg), env)
		if err == nil && pid != os.Getpid() {
			err = fmt.Errorf("queued by qmail-queue (pid %d), not by the service", pid)
		}
		if err != nil {
			return fmt.Errorf("qmail-queued: %v", err)
		}
		return nil
	})
}

// parallel times n calls of one from par goroutines; the first error
// stops its goroutine and is returned.
func parallel(n, par int, one func() error) (time.Duration, error) {
	var wg sync.WaitGroup
	errs := make(chan error, par)
	start := time.Now()
	for w := 0; w < par; w++ {
		count := n / par
		if w < n%par {
			count++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < count; i++ {
				if err := one(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	select {
	case err := <-errs:
		return 0, err
	default:
	}
	return elapsed, nil
}

// queueTime times n runs of qmail-queue from par writers.
func queueTime(root, tmp string, msg, env []byte, n, par int) (time.Duration, error) {
	mf := filepath.Join(tmp, "msg")
	ef := filepath.Join(tmp, "env")
	if err := os.WriteFile(mf, msg, 0o644); err != nil {
		return 0, err
	}
	if err := os.WriteFile(ef, env, 0o644); err != nil {
		return 0, err
	}
	qq := filepath.Join(root, "bin", "qmail-queue")
	return parallel(n, par, func() error {
		m, err := os.Open(mf)
		if err != nil {
			return err
		}
		defer m.Close()
		e, err := os.Open(ef)
		if err != nil {
			return err
		}
		defer e.Close()
		cmd := exec.Command(qq)
		cmd.Stdin = m
		cmd.Stdout = e
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("qmail-queue: %v", err)
		}
		return nil
	})
}
