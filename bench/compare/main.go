// Command compare runs the eight workloads of issue 8 against this project
// and, in the same run, against a private Postfix instance, and prints a
// table of messages/s for both with the ratio, plus the peak RSS (VmHWM) of
// qmail-send and of Postfix's qmgr with the held messages queued.
//
// Both systems run side by side on loopback only:
//
//   - hqmail: a tree installed with the real qmail-install in a temporary
//     root, qmail-start ./Maildir/, qmail-smtpd -listen on a free port,
//     local mail for box@bench.example into alias/Maildir (.qmail-box),
//     remote mail routed by control/smtproutes to a loopback smtp-sink.
//   - Postfix: config_directory and queue_directory under the same
//     temporary directory, `postfix -c DIR start`, smtpd on 127.0.0.1 and a
//     free port, local mail for box@pf.test into a Maildir by the virtual
//     agent, remote mail by relayhost to its own loopback smtp-sink.
//
// Each workload runs BENCH_REPS times per system (interleaved: hqmail,
// Postfix, hqmail, ...) and the median is printed. Messages are 2 KB.
// Nothing is asserted; numbers only. Every wait is bounded; every process
// started is stopped at the end (also on SIGINT/SIGTERM).
//
//	go run ./bench/compare [-bin bin] [-n 2000] [-held 5000] [-reps 3] [-quick]
//
// Environment: BENCH_N, BENCH_HELD, BENCH_REPS, BENCH_QUICK=1 override the
// defaults (quick: n=100, held=200, reps=1). BENCH_ONLY=hqmail or postfix
// runs one side; BENCH_ROWS=6 (or -rows 1,6) only some rows, e.g. under
// `perf record -a -g` to see where one workload spends its time.
// HQ_START_ENV="K=V ..." adds variables to qmail-start's environment (and
// so to every program it starts), for experiments such as GOMAXPROCS=1.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// cleanups run in reverse order at exit.
var (
	cleanMu  sync.Mutex
	cleanups []func()
)

func atExit(f func()) {
	cleanMu.Lock()
	cleanups = append(cleanups, f)
	cleanMu.Unlock()
}

func runCleanups() {
	cleanMu.Lock()
	c := cleanups
	cleanups = nil
	cleanMu.Unlock()
	for i := len(c) - 1; i >= 0; i-- {
		c[i]()
	}
}

func die(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "compare: "+format+"\n", a...)
	runCleanups()
	os.Exit(1)
}

func envInt(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			return n
		}
	}
	return def
}

// target is one MTA under test, seen through what the workloads need.
type target interface {
	Name() string
	// Sendmail returns the argv and environment of one sendmail run
	// delivering to rcpt.
	Sendmail(rcpt string) (argv []string, env []string)
	SMTPAddr() string
	LocalRcpt() string
	RemoteRcpt() string
	Maildir() string
	Sink() *sink
	// Hold defers the local or remote channel; Release undoes it and
	// starts delivery of what is queued.
	Hold(remote bool)
	Release(remote bool)
	// Queued reports how many messages sit in the queue, fully accepted
	// and processed as far as the hold allows (nothing in flight).
	Queued() (settled bool, n int)
	// DaemonRSS is the VmHWM (kB) of the queue manager.
	DaemonRSS() int
}

// message returns a 2 KB message with headers.
func message(from, to string, seq int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\nTo: %s\nSubject: bench %d\nMessage-ID: <%d.bench@bench.example>\n\n", from, to, seq, seq)
	line := strings.Repeat("abcdefghij", 7) + "\n"
	for b.Len() < 2048-len(line) {
		b.WriteString(line)
	}
	for b.Len() < 2047 {
		b.WriteByte('x')
	}
	b.WriteByte('\n')
	return []byte(b.String())
}

// inject runs n sendmail processes, par at a time, each queuing one
// message to rcpt; it returns when every one has exited.
func inject(t target, rcpt string, n, par int) (time.Duration, error) {
	var failed atomic.Int64
	var first atomic.Value
	jobs := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < par; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				argv, env := t.Sendmail(rcpt)
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
				cmd.Env = env
				cmd.Stdin = strings.NewReader(string(message("bench@bench.example", rcpt, i)))
				out, err := cmd.CombinedOutput()
				cancel()
				if err != nil {
					failed.Add(1)
					first.CompareAndSwap(nil, fmt.Sprintf("%v: %s", err, out))
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	el := time.Since(start)
	if f := failed.Load(); f > 0 {
		return el, fmt.Errorf("%s: %d sendmail runs failed, first: %v", t.Name(), f, first.Load())
	}
	return el, nil
}

// smtpSource sends n messages of 2 KB to addr over sessions parallel
// sessions (each session carries several messages: -d).
func smtpSource(addr, rcpt string, n, sessions int) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/sbin/smtp-source", "-s", strconv.Itoa(sessions), "-m", strconv.Itoa(n),
		"-l", "2048", "-d", "-M", "client.bench", "-f", "bench@client.bench", "-t", rcpt, addr)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	el := time.Since(start)
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		return el, fmt.Errorf("smtp-source %s: %v %s", addr, err, out)
	}
	return el, nil
}

// waitUntil polls cond every 20 ms up to timeout.
func waitUntil(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// maildirCount counts the files in new/ and cur/.
func maildirCount(dir string) int {
	n := 0
	for _, s := range []string{"new", "cur"} {
		f, err := os.Open(filepath.Join(dir, s))
		if err != nil {
			continue
		}
		names, _ := f.Readdirnames(-1)
		f.Close()
		n += len(names)
	}
	return n
}

func emptyMaildir(dir string) {
	for _, s := range []string{"new", "cur"} {
		ents, _ := os.ReadDir(filepath.Join(dir, s))
		for _, e := range ents {
			os.Remove(filepath.Join(dir, s, e.Name()))
		}
	}
}

// countFiles counts regular files below dir.
func countFiles(dir string) int {
	n := 0
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return nil
	})
	return n
}

// freePort returns a free TCP port on 127.0.0.1.
func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		die("%v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func waitListen(addr string, timeout time.Duration) bool {
	return waitUntil(timeout, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// sink is a loopback smtp-sink whose running message counter (-c) is read
// from its stdout.
type sink struct {
	Addr string
	cmd  *exec.Cmd
	n    atomic.Int64
}

func startSink(dir string) *sink {
	port := freePort()
	s := &sink{Addr: fmt.Sprintf("127.0.0.1:%d", port)}
	args := []string{"-c", "-h", "sink.bench", "-m", "512"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "nobody")
	}
	args = append(args, s.Addr, "1024")
	cmd := exec.Command("/usr/sbin/smtp-sink", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		die("%v", err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		die("smtp-sink: %v", err)
	}
	s.cmd = cmd
	atExit(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() })
	go func() {
		r := bufio.NewReader(out)
		for {
			// Counter lines end in \r: "sess=N quit=N mesg=N".
			l, err := r.ReadString('\r')
			if i := strings.LastIndex(l, "mesg="); i >= 0 {
				v, _ := strconv.Atoi(strings.TrimSpace(strings.TrimRight(l[i+5:], "\r\n")))
				s.n.Store(int64(v))
			}
			if err != nil {
				return
			}
		}
	}()
	if !waitListen(s.Addr, 10*time.Second) {
		die("smtp-sink does not listen on %s", s.Addr)
	}
	return s
}

// Count is the number of messages the sink has received.
func (s *sink) Count() int { return int(s.n.Load()) }

// result holds the durations of one row per system.
type result struct {
	name  string
	n     int
	times map[string][]time.Duration
	note  string
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func main() {
	bin := flag.String("bin", "bin", "directory with the built programs (make build)")
	n := flag.Int("n", 0, "messages per workload (default BENCH_N or 2000)")
	held := flag.Int("held", 0, "messages in the hold-release workload (default BENCH_HELD or 5000)")
	reps := flag.Int("reps", 0, "repetitions (default BENCH_REPS or 3)")
	quick := flag.Bool("quick", os.Getenv("BENCH_QUICK") == "1", "smoke test: n=100, held=200, reps=1")
	keep := flag.Bool("keep", false, "keep the temporary directory")
	only := flag.String("rows", os.Getenv("BENCH_ROWS"), "run only these rows (comma-separated, 1-8), e.g. to profile one")
	flag.Parse()
	dn, dh, dr := 2000, 5000, 3
	if *quick {
		dn, dh, dr = 100, 200, 1
	}
	if *n == 0 {
		*n = envInt("BENCH_N", dn)
	}
	if *held == 0 {
		*held = envInt("BENCH_HELD", dh)
	}
	if *reps == 0 {
		*reps = envInt("BENCH_REPS", dr)
	}
	binDir, err := filepath.Abs(*bin)
	if err != nil {
		die("%v", err)
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "compare: %v: cleaning up\n", s)
		runCleanups()
		os.Exit(130)
	}()

	tmp, err := os.MkdirTemp("", "hqmail-compare-")
	if err != nil {
		die("%v", err)
	}
	os.Chmod(tmp, 0o755)
	if !*keep {
		atExit(func() { os.RemoveAll(tmp) })
	} else {
		fmt.Fprintf(os.Stderr, "compare: keeping %s\n", tmp)
	}

	var targets []target
	side := os.Getenv("BENCH_ONLY")
	if side == "" || side == "hqmail" {
		targets = append(targets, startHQ(filepath.Join(tmp, "hq"), binDir))
	}
	if side == "" || side == "postfix" {
		if pf, why := startPostfix(filepath.Join(tmp, "pf")); pf != nil {
			targets = append(targets, pf)
		} else {
			fmt.Fprintf(os.Stderr, "compare: Postfix not measured: %s\n", why)
		}
	}
	if len(targets) == 0 {
		die("nothing to measure")
	}

	fmt.Printf("compare: N=%d held=%d reps=%d, 2 KB messages; %s\n", *n, *held, *reps, machine())
	rows := workloads(*n, *held)
	if *only != "" {
		var sel []workload
		for _, f := range strings.Split(*only, ",") {
			i, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || i < 1 || i > len(rows) {
				die("-rows: %q is not a row number 1-%d", f, len(rows))
			}
			sel = append(sel, rows[i-1])
		}
		rows = sel
	}
	results := make([]*result, len(rows))
	rss := map[string]int{}
	for i, w := range rows {
		r := &result{name: w.name, n: w.n, times: map[string][]time.Duration{}}
		results[i] = r
		for rep := 0; rep < *reps; rep++ {
			for _, t := range targets {
				d, err := w.run(t, rss)
				if err != nil {
					die("%s, %s: %v", w.name, t.Name(), err)
				}
				r.times[t.Name()] = append(r.times[t.Name()], d)
				fmt.Fprintf(os.Stderr, "compare: %-44s %-8s rep %d: %7.2f s  %7.1f/s\n", w.name, t.Name(), rep+1,
					d.Seconds(), float64(w.n)/d.Seconds())
			}
		}
	}
	runCleanups()
	printTable(results, rss, targets)
}

func machine() string {
	model := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				if _, v, ok := strings.Cut(l, ":"); ok {
					model = strings.TrimSpace(v)
				}
				break
			}
		}
	}
	out, _ := exec.Command("nproc").Output()
	return fmt.Sprintf("%s CPUs (%s), %s", strings.TrimSpace(string(out)), model, time.Now().UTC().Format("2006-01-02 15:04 UTC"))
}

func printTable(results []*result, rss map[string]int, targets []target) {
	names := []string{}
	for _, t := range targets {
		names = append(names, t.Name())
	}
	fmt.Println()
	fmt.Printf("| workload | %s | ratio |\n", strings.Join(names, " | "))
	fmt.Printf("|---|%s---|\n", strings.Repeat("---|", len(names)))
	for _, r := range results {
		cells := []string{}
		rates := []float64{}
		for _, nm := range names {
			m := median(r.times[nm])
			rate := float64(r.n) / m.Seconds()
			rates = append(rates, rate)
			cells = append(cells, fmt.Sprintf("%.0f/s", rate))
		}
		ratio := "-"
		if len(rates) == 2 && rates[1] > 0 {
			ratio = fmt.Sprintf("%.2fx", rates[0]/rates[1])
		}
		fmt.Printf("| %s | %s | %s |\n", r.name, strings.Join(cells, " | "), ratio)
	}
	cells := []string{}
	for _, nm := range names {
		cells = append(cells, fmt.Sprintf("%.1f MB", float64(rss[nm])/1024))
	}
	fmt.Printf("| queue manager peak RSS (VmHWM) with the held messages queued (qmail-send / qmgr) | %s | - |\n", strings.Join(cells, " | "))
	fmt.Println("\nrates: medians of the repetitions; ratio = hqmail / postfix (above 1: hqmail faster).")
}

// workload is one row of the table.
type workload struct {
	name string
	n    int
	run  func(t target, rss map[string]int) (time.Duration, error)
}

func workloads(n, held int) []workload {
	return []workload{
		{fmt.Sprintf("inject %d via sendmail, sequential", n), n, func(t target, _ map[string]int) (time.Duration, error) {
			return endToEndLocal(t, n, 1, false)
		}},
		{fmt.Sprintf("inject %d via sendmail, 8 in parallel", n), n, func(t target, _ map[string]int) (time.Duration, error) {
			return endToEndLocal(t, n, 8, false)
		}},
		{fmt.Sprintf("%d end to end into one Maildir (8 injectors)", n), n, func(t target, _ map[string]int) (time.Duration, error) {
			return endToEndLocal(t, n, 8, true)
		}},
		{fmt.Sprintf("%d end to end to a loopback SMTP sink (8 injectors)", n), n, func(t target, _ map[string]int) (time.Duration, error) {
			s := t.Sink()
			before := s.Count()
			start := time.Now()
			if _, err := inject(t, t.RemoteRcpt(), n, 8); err != nil {
				return 0, err
			}
			if !waitUntil(10*time.Minute, func() bool { return s.Count() >= before+n }) {
				return 0, fmt.Errorf("sink got %d of %d", s.Count()-before, n)
			}
			return time.Since(start), nil
		}},
		{fmt.Sprintf("%d held, then released: release -> all at the sink", held), held, func(t target, rss map[string]int) (time.Duration, error) {
			return heldRelease(t, held, true, rss)
		}},
		{fmt.Sprintf("%d over SMTP, 10 parallel sessions, accepted", n), n, func(t target, _ map[string]int) (time.Duration, error) {
			before := maildirCount(t.Maildir())
			d, err := smtpSource(t.SMTPAddr(), t.LocalRcpt(), n, 10)
			if err != nil {
				return 0, err
			}
			// Not timed: everything accepted is delivered before the next run.
			if !waitUntil(10*time.Minute, func() bool { return maildirCount(t.Maildir()) >= before+n }) {
				return 0, fmt.Errorf("%d of %d accepted messages delivered", maildirCount(t.Maildir())-before, n)
			}
			emptyMaildir(t.Maildir())
			return d, nil
		}},
		{fmt.Sprintf("%d already queued, delivery only, into a Maildir", n), n, func(t target, rss map[string]int) (time.Duration, error) {
			return heldRelease(t, n, false, nil)
		}},
		{fmt.Sprintf("%d already queued, delivery only, to a loopback sink", n), n, func(t target, rss map[string]int) (time.Duration, error) {
			return heldRelease(t, n, true, nil)
		}},
	}
}

// endToEndLocal injects n messages to the local Maildir with par
// injectors. With e2e it returns the time until all are in the Maildir,
// else the time until every injector has returned (the delivery is still
// waited for, untimed).
func endToEndLocal(t target, n, par int, e2e bool) (time.Duration, error) {
	md := t.Maildir()
	before := maildirCount(md)
	start := time.Now()
	d, err := inject(t, t.LocalRcpt(), n, par)
	if err != nil {
		return 0, err
	}
	if !waitUntil(10*time.Minute, func() bool { return maildirCount(md) >= before+n }) {
		return 0, fmt.Errorf("%d of %d delivered", maildirCount(md)-before, n)
	}
	if e2e {
		d = time.Since(start)
	}
	emptyMaildir(md)
	return d, nil
}

// heldRelease fills the queue with n messages while the channel is held
// (through SMTP, untimed), waits until the queue has settled, releases and
// times release -> the last delivery. With rss it records the queue
// manager's peak RSS.
func heldRelease(t target, n int, remote bool, rss map[string]int) (time.Duration, error) {
	// Start from an empty queue: the previous run's last messages may
	// still be being cleaned up.
	if !waitUntil(2*time.Minute, func() bool { ok, q := t.Queued(); return ok && q == 0 }) {
		_, q := t.Queued()
		return 0, fmt.Errorf("queue not empty before the run: %d messages", q)
	}
	t.Hold(remote)
	q0 := 0
	rcpt := t.LocalRcpt()
	if remote {
		rcpt = t.RemoteRcpt()
	}
	if _, err := smtpSource(t.SMTPAddr(), rcpt, n, 8); err != nil {
		return 0, err
	}
	var settled bool
	var q int
	if !waitUntil(10*time.Minute, func() bool { settled, q = t.Queued(); return settled && q >= q0+n }) {
		return 0, fmt.Errorf("queue did not settle with %d messages (settled %v, %d)", q0+n, settled, q)
	}
	md := t.Maildir()
	s := t.Sink()
	mdBefore, sinkBefore := maildirCount(md), s.Count()
	peak := t.DaemonRSS()
	start := time.Now()
	t.Release(remote)
	done := func() bool {
		if remote {
			return s.Count() >= sinkBefore+n
		}
		return maildirCount(md) >= mdBefore+n
	}
	ok := waitUntil(10*time.Minute, func() bool {
		if rss != nil {
			peak = max(peak, t.DaemonRSS())
		}
		return done()
	})
	d := time.Since(start)
	if !ok {
		return 0, fmt.Errorf("after release: maildir +%d, sink +%d of %d", maildirCount(md)-mdBefore, s.Count()-sinkBefore, n)
	}
	if rss != nil {
		rss[t.Name()] = max(rss[t.Name()], peak, t.DaemonRSS())
	}
	if !remote {
		emptyMaildir(md)
	}
	return d, nil
}

// lookupUser returns the uid and gid of a passwd user.
func lookupUser(name string) (int, int, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, 0, err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return uid, gid, nil
}
