// Command remote benchmarks qmail-remote: it runs -n (2,000) deliveries,
// -c (20, qmail's default concurrencyremote) at a time, each one a
// qmail-remote process with one recipient, to an in-process go-smtp sink on
// loopback reached through control/smtproutes (no DNS), and prints
// messages/s plus the mean time of one run. It prints numbers and asserts
// nothing. Run as root or as any user:
//
//	go run ./bench/remote [-n N] [-c N] [-size BYTES] [-bin DIR]
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

func die(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "remote: "+format+"\n", a...)
	os.Exit(1)
}

type session struct{ n *atomic.Int64 }

func (session) Reset()                               {}
func (session) Logout() error                        { return nil }
func (session) Mail(string, *smtp.MailOptions) error { return nil }
func (session) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s session) Data(r io.Reader) error             { io.Copy(io.Discard, r); s.n.Add(1); return nil }
func newSession(n *atomic.Int64) func(*smtp.Conn) (smtp.Session, error) {
	return func(*smtp.Conn) (smtp.Session, error) { return session{n}, nil }
}

func main() {
	n := flag.Int("n", 2000, "messages")
	conc := flag.Int("c", 20, "concurrent qmail-remote processes")
	size := flag.Int("size", 4096, "message size in bytes")
	bin := flag.String("bin", "", "directory holding qmail-remote (default: build it)")
	flag.Parse()

	root, err := os.MkdirTemp("", "hqmail-bench-remote-")
	if err != nil {
		die("%v", err)
	}
	defer os.RemoveAll(root)
	for _, d := range []string{"bin", "control", "queue/lock"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	prog := filepath.Join(root, "bin", "qmail-remote")
	if *bin != "" {
		b, err := os.ReadFile(filepath.Join(*bin, "qmail-remote"))
		if err != nil {
			die("%v", err)
		}
		os.WriteFile(prog, b, 0o755)
	} else {
		cmd := exec.Command("go", "build", "-trimpath", "-o", prog, "./cmd/qmail-remote")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			die("build: %v\n%s", err, out)
		}
	}
	os.WriteFile(filepath.Join(root, "queue/lock/tcpto"), make([]byte, 1024), 0o644)

	var got atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		die("%v", err)
	}
	srv := smtp.NewServer(smtp.BackendFunc(newSession(&got)))
	srv.Domain = "sink.bench"
	srv.MaxMessageBytes = 1 << 30
	go srv.Serve(ln)
	defer srv.Close()

	ctl := func(name, v string) { os.WriteFile(filepath.Join(root, "control", name), []byte(v), 0o644) }
	ctl("me", "bench.example\n")
	ctl("smtproutes", ":"+"["+"127.0.0.1"+"]:"+fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)+"\n")

	var msg bytes.Buffer
	msg.WriteString("From: a@bench.example\nTo: b@sink.bench\nSubject: bench\n\n")
	for msg.Len() < *size {
		msg.WriteString(strings.Repeat("x", 71) + "\n")
	}
	mf := filepath.Join(root, "mess")
	os.WriteFile(mf, msg.Bytes(), 0o644)

	var failed atomic.Int64
	var total atomic.Int64 // nanoseconds spent in runs
	jobs := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < *conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				f, err := os.Open(mf)
				if err != nil {
					die("%v", err)
				}
				t0 := time.Now()
				cmd := exec.Command(prog, "sink.bench", "a@bench.example", fmt.Sprintf("b%d@sink.bench", i))
				cmd.Stdin = f
				out, err := cmd.Output()
				total.Add(int64(time.Since(t0)))
				f.Close()
				if err != nil || !bytes.HasPrefix(out, []byte("r\x00K")) {
					if failed.Add(1) == 1 {
						fmt.Fprintf(os.Stderr, "remote: first failure: %v %q\n", err, out)
					}
				}
			}
		}()
	}
	for i := 0; i < *n; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	el := time.Since(start)
	fmt.Printf("qmail-remote: %d messages of %d bytes, concurrency %d: %.2fs, %.0f messages/s, mean run %.2fms, %d failed, sink got %d\n",
		*n, msg.Len(), *conc, el.Seconds(), float64(*n)/el.Seconds(),
		float64(total.Load())/float64(*n)/1e6, failed.Load(), got.Load())
}
