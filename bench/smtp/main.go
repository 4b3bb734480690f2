// Command smtp benchmarks qmail-smtpd: messages per second accepted over
// SMTP from parallel sessions on loopback. It installs a tree in a
// temporary root with the real qmail-install, starts the tree's
// `qmail-smtpd -listen` on a free loopback port and sends 2 KB messages
// with its own pipelining Go client (and with Postfix's smtp-source when
// /usr/sbin/smtp-source exists). Each run is made twice: with the real
// qmail-queue (the figure that matters: one process and the fsyncs per
// message) and with a null qmail-queue, a Go program that reads and
// discards (process start without the disk work: what is left is the SMTP
// side plus one process start per message). Numbers only; nothing is
// asserted.
//
//	go run ./bench/smtp [-bin DIR] [-n 2000] [-c 10] [-size 2048]
//
// -bin holds qmail-install, qmail-queue and qmail-smtpd (default: bin/).
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if os.Getenv("HQ_BENCH_NULLQQ") == "1" {
		// Acting as the null qmail-queue: read message and envelope.
		io.Copy(io.Discard, os.Stdin)
		io.Copy(io.Discard, os.NewFile(1, "envelope"))
		os.Exit(0)
	}
	bin := flag.String("bin", "bin", "directory with qmail-install, qmail-queue, qmail-smtpd")
	n := flag.Int("n", 2000, "messages per run")
	c := flag.Int("c", 10, "parallel SMTP sessions")
	size := flag.Int("size", 2048, "message size in bytes")
	flag.Parse()
	if err := run(*bin, *n, *c, *size); err != nil {
		fmt.Fprintln(os.Stderr, "bench/smtp:", err)
		os.Exit(1)
	}
}

func run(bin string, n, sessions, size int) error {
	bin, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "hqmail-bench-smtp-")
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
	// qmail-install may not know qmail-smtpd yet: make sure the tree has it.
	smtpd := filepath.Join(root, "bin", "qmail-smtpd")
	if _, err := os.Stat(smtpd); err != nil {
		data, err := os.ReadFile(filepath.Join(bin, "qmail-smtpd"))
		if err != nil {
			return err
		}
		if err := os.WriteFile(smtpd, data, 0o755); err != nil {
			return err
		}
	}
	// The null qmail-queue is this program run again (see main): the same
	// kind of process start as qmail-queue, without its disk writes.
	null, err := os.Executable()
	if err != nil {
		return err
	}
	msg := makeMessage(size)
	fmt.Printf("qmail-smtpd: %d messages of %d bytes, %d parallel sessions, loopback\n", n, size, sessions)
	fmt.Printf("%-42s %10s %10s\n", "client / qmail-queue", "seconds", "msgs/s")
	for _, qq := range []struct{ name, prog string }{
		{"real qmail-queue", ""},
		{"null qmail-queue (no disk)", null},
	} {
		addr, stop, err := startSmtpd(smtpd, root, qq.prog, sessions)
		if err != nil {
			return err
		}
		d, err := goClient(addr, n, sessions, msg)
		if err != nil {
			stop()
			return err
		}
		report("go client, "+qq.name, n, d)
		if _, err := os.Stat("/usr/sbin/smtp-source"); err == nil {
			d, err := smtpSource(addr, n, sessions, size)
			if err != nil {
				fmt.Printf("%-42s %v\n", "smtp-source, "+qq.name, err)
			} else {
				report("smtp-source, "+qq.name, n, d)
			}
		}
		stop()
	}
	return nil
}

func report(name string, n int, d time.Duration) {
	fmt.Printf("%-42s %10.2f %10.0f\n", name, d.Seconds(), float64(n)/d.Seconds())
}

// startSmtpd runs ROOT/bin/qmail-smtpd -listen on a free loopback port.
func startSmtpd(smtpd, root, qq string, sessions int) (string, func(), error) {
	addr, err := freeAddr()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(smtpd, "-listen", addr, "-c", strconv.Itoa(sessions+10))
	cmd.Dir = root
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	if qq != "" {
		cmd.Env = append(cmd.Env, "QMAILQUEUE="+qq, "HQ_BENCH_NULLQQ=1")
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() {
		cmd.Process.Kill()
		cmd.Wait()
	}
	for i := 0; i < 200; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr, stop, nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	stop()
	return "", nil, fmt.Errorf("qmail-smtpd does not listen on %s", addr)
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// makeMessage builds a message of about size bytes, dot-stuffed, CRLF,
// ending with the DATA terminator.
func makeMessage(size int) []byte {
	var b strings.Builder
	b.WriteString("From: bench@example.com\r\nTo: user@bench.example\r\nSubject: bench\r\n\r\n")
	line := strings.Repeat("0123456789", 7) + "\r\n"
	for b.Len() < size {
		b.WriteString(line)
	}
	b.WriteString(".\r\n")
	return []byte(b.String())
}

// goClient sends n messages over sessions parallel connections, each
// pipelining MAIL, RCPT and DATA.
func goClient(addr string, n, sessions int, msg []byte) (time.Duration, error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, sessions)
	start := time.Now()
	for s := 0; s < sessions; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := session(addr, &next, int64(n), msg); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	select {
	case err := <-errs:
		return d, err
	default:
	}
	return d, nil
}

func session(addr string, next *atomic.Int64, n int64, msg []byte) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Minute))
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	expect := func(code string) error {
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return err
			}
			if !strings.HasPrefix(l, code) {
				return fmt.Errorf("want %s, got %q", code, l)
			}
			if len(l) < 4 || l[3] != '-' {
				return nil
			}
		}
	}
	if err := expect("220"); err != nil {
		return err
	}
	fmt.Fprintf(w, "EHLO bench.client\r\n")
	w.Flush()
	if err := expect("250"); err != nil {
		return err
	}
	for next.Add(1) <= n {
		w.WriteString("MAIL FROM:<bench@example.com>\r\nRCPT TO:<user@bench.example>\r\nDATA\r\n")
		w.Flush()
		for _, code := range []string{"250", "250", "354"} {
			if err := expect(code); err != nil {
				return err
			}
		}
		w.Write(msg)
		w.Flush()
		if err := expect("250"); err != nil {
			return err
		}
	}
	w.WriteString("QUIT\r\n")
	w.Flush()
	return expect("221")
}

// smtpSource runs Postfix's smtp-source: n messages of size bytes over
// sessions parallel sessions.
func smtpSource(addr string, n, sessions, size int) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/sbin/smtp-source", "-s", strconv.Itoa(sessions), "-m", strconv.Itoa(n),
		"-l", strconv.Itoa(size), "-f", "bench@example.com", "-t", "user@bench.example", "-d", addr)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	if err != nil {
		return d, fmt.Errorf("%v %s", err, out)
	}
	return d, nil
}
