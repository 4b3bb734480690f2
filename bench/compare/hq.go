package main

import (
	"context"
	"fmt"
	"github.com/hqmail/hqmail/bench/procstat"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// hq is an installed and running hqmail tree.
type hq struct {
	root  string
	smtp  string
	sink  *sink
	start *exec.Cmd
	log   string
}

// uidBase is the numeric id base qmail-install -uid-base gets as root
// (alias=base, qmaild=base+1, ...; group qmail=base, nofiles=base+1), as in
// the integration tests.
const uidBase = 64010

func startHQ(dir, bin string) *hq {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		die("%v", err)
	}
	h := &hq{root: filepath.Join(dir, "root"), log: filepath.Join(dir, "qmail-send.log")}
	args := []string{"-root", h.root, "-me", "bench.example"}
	if os.Geteuid() == 0 {
		args = append(args, "-uid-base", strconv.Itoa(uidBase))
	}
	// qmail-install copies the programs of the directory it runs from.
	if out, err := exec.Command(filepath.Join(bin, "qmail-install"), args...).CombinedOutput(); err != nil {
		die("qmail-install: %v\n%s", err, out)
	}
	alias := filepath.Join(h.root, "alias")
	var st syscall.Stat_t
	if err := syscall.Stat(alias, &st); err != nil {
		die("%v", err)
	}
	dq := filepath.Join(alias, ".qmail-box")
	os.WriteFile(dq, []byte("./Maildir/\n"), 0o644)
	os.Chown(dq, int(st.Uid), int(st.Gid))

	h.sink = startSink(dir)
	_, port, _ := strings.Cut(h.sink.Addr, ":")
	h.control("smtproutes", ":[127.0.0.1]:"+port+"\n")

	// qmail-start, its stdout (qmail-send's log) into a file.
	logf, err := os.Create(h.log)
	if err != nil {
		die("%v", err)
	}
	cmd := exec.Command(filepath.Join(h.root, "bin", "qmail-start"), "./Maildir/")
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	if v := os.Getenv("HQ_START_ENV"); v != "" {
		cmd.Env = append(cmd.Env, strings.Fields(v)...)
	}
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		die("qmail-start: %v", err)
	}
	logf.Close()
	h.start = cmd
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	atExit(func() {
		if pid := h.sendPid(); pid > 0 {
			syscall.Kill(pid, syscall.SIGTERM)
		}
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	if !waitUntil(20*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(h.root, "queue", "lock", "sendstatus"))
		return h.sendPid() > 0 && strings.Contains(string(b), "generation")
	}) {
		b, _ := os.ReadFile(h.log)
		die("qmail-send did not start; log:\n%s", b)
	}

	// qmail-smtpd -listen, as qmaild/nofiles when root (as under tcpserver).
	h.smtp = fmt.Sprintf("127.0.0.1:%d", freePort())
	sm := exec.Command(filepath.Join(h.root, "bin", "qmail-smtpd"), "-listen", h.smtp, "-c", "40")
	sm.Dir = "/"
	sm.Env = []string{"PATH=/usr/bin:/bin"}
	sm.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if os.Geteuid() == 0 {
		sm.SysProcAttr.Credential = &syscall.Credential{Uid: uidBase + 1, Gid: uidBase + 1}
	}
	smlog, _ := os.Create(filepath.Join(dir, "qmail-smtpd.log"))
	sm.Stdout, sm.Stderr = smlog, smlog
	if err := sm.Start(); err != nil {
		die("qmail-smtpd: %v", err)
	}
	smlog.Close()
	atExit(func() { syscall.Kill(-sm.Process.Pid, syscall.SIGKILL); sm.Wait() })
	if !waitListen(h.smtp, 10*time.Second) {
		die("qmail-smtpd does not listen on %s", h.smtp)
	}
	return h
}

func (h *hq) control(name, content string) {
	if err := os.WriteFile(filepath.Join(h.root, "control", name), []byte(content), 0o644); err != nil {
		die("%v", err)
	}
}

func (h *hq) sendPid() int {
	b, _ := os.ReadFile(filepath.Join(h.root, "queue", "lock", "sendmutex"))
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

func (h *hq) Name() string { return "hqmail" }

func (h *hq) Sendmail(rcpt string) ([]string, []string) {
	return []string{filepath.Join(h.root, "bin", "sendmail"), rcpt}, []string{"PATH=/usr/bin:/bin"}
}

func (h *hq) SMTPAddr() string   { return h.smtp }
func (h *hq) LocalRcpt() string  { return "box@bench.example" }
func (h *hq) RemoteRcpt() string { return "rcpt@remote.example" }
func (h *hq) Maildir() string    { return filepath.Join(h.root, "alias", "Maildir") }
func (h *hq) Sink() *sink        { return h.sink }

func (h *hq) qmailctl(args ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(h.root, "bin", "qmailctl"), args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		die("qmailctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func channel(remote bool) string {
	if remote {
		return "remote"
	}
	return "local"
}

func (h *hq) Hold(remote bool)    { h.qmailctl("hold", channel(remote)) }
func (h *hq) Release(remote bool) { h.qmailctl("release", channel(remote)) }

// Queued: nothing in queue/todo or queue/intd (everything preprocessed by
// qmail-send) and the count of queue/mess.
func (h *hq) Queued() (bool, int) {
	q := filepath.Join(h.root, "queue")
	settled := countFiles(filepath.Join(q, "todo")) == 0 && countFiles(filepath.Join(q, "intd")) == 0
	return settled, countFiles(filepath.Join(q, "mess"))
}

func (h *hq) DaemonRSS() int { return procstat.VmHWM(h.sendPid()) }
