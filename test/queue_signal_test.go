package test

import (
	"bytes"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/test/harness"
)

// TestQueueInterruptedInject is the case qmail-queue's signal handling is
// for: a user's qmail-inject, with no queue service running, runs the
// installed qmail-queue itself in the user's process group and streams
// the message to it; a ^C (SIGINT to the whole group) while the message
// is being written must leave nothing of it in the queue (no mess/,
// intd/, pid/ or todo/ file waiting 36 hours for qmail-send's cleanup,
// none counted by qmail-qstat), and qmail-inject must not claim success.
func TestQueueInterruptedInject(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test; skipped under -short")
	}
	if signal.Ignored(syscall.SIGINT) {
		t.Skip("SIGINT is ignored in this test process, so in its children too")
	}
	tr := harness.Install(t, harness.WithMe("mx.example.org"))
	cmd := exec.Command(tr.Bin("qmail-inject"), "carol@example.com")
	cmd.Env = []string{"USER=alice", "PATH=/usr/bin:/bin"}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a terminal's job
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	done := make(chan struct{})
	var werr error
	go func() { werr = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		syscall.Kill(-pgid, syscall.SIGKILL)
		in.Close()
		<-done
	})
	// Header and a first part of the body; the rest never comes. Enough
	// body that qmail-inject has handed the header on to qmail-queue.
	body := make([]byte, 256<<10)
	for i := range body {
		body[i] = 'a' + byte(i%26)
		if i%70 == 69 {
			body[i] = '\n'
		}
	}
	go func() {
		in.Write([]byte("From: alice\nTo: carol@example.com\nSubject: interrupted\n\n"))
		in.Write(body)
	}()
	harness.WaitFor(t, 60*time.Second, func() bool { return len(tr.QueueFiles("mess")) == 1 })
	syscall.Kill(-pgid, syscall.SIGINT) // ^C
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("qmail-inject did not end after SIGINT")
	}
	if werr == nil {
		t.Error("qmail-inject exited 0 after SIGINT")
	}
	// qmail-queue, in the same group, is gone once no live process is
	// left in it (a zombie not yet reaped by whoever inherited it counts
	// as gone).
	harness.WaitFor(t, 60*time.Second, func() bool { return !groupAlive(pgid) })
	for _, d := range []string{"pid", "mess", "intd", "todo"} {
		if f := tr.QueueFiles(d); len(f) != 0 {
			t.Errorf("queue/%s keeps %v", d, f)
		}
	}
}

// groupAlive reports whether a process other than a zombie is in process
// group pgid (/proc/PID/stat: "pid (comm) state ppid pgrp ...").
func groupAlive(pgid int) bool {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) >= 3 && f[0] != "Z" && f[2] == strconv.Itoa(pgid) {
			return true
		}
	}
	return false
}
