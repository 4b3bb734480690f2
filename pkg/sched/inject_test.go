package sched

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hqmail/hqmail/pkg/qq"
)

// TestBounceBypassesService: qmail-send queues its bounces with
// qmail-queue itself, never through the queue service, which any local
// user can keep busy (QA: each bounce then stopped qmail-send's loop for
// the service's 10 s answer time-out).
func TestBounceBypassesService(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"bin", "public"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A service that takes connections and never answers.
	ln, err := net.Listen("unixpacket", filepath.Join(root, qq.ServiceSocket))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var dialed atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			dialed.Add(1)
			defer c.Close()
		}
	}()
	got := filepath.Join(root, "got")
	script := "#!/bin/sh\ncat > '" + got + "'\ncat <&1 >/dev/null\nexit 0\n"
	if err := os.WriteFile(filepath.Join(root, "bin", "qmail-queue"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	s := &Sched{root: root}
	pid, err := s.inject(strings.NewReader("Subject: bounce\n\nbody\n"), "", []string{"ann@example.org"})
	if err != nil || pid == 0 {
		t.Fatalf("inject: pid %d, %v", pid, err)
	}
	if b, _ := os.ReadFile(got); string(b) != "Subject: bounce\n\nbody\n" {
		t.Errorf("qmail-queue got %q", b)
	}
	if n := dialed.Load(); n != 0 {
		t.Errorf("%d connections to the queue service, want none", n)
	}
}

// TestInjectStderr: the bounce's qmail-queue writes its descriptor 2 into
// qmail-send's log, never into qmail-send's own descriptor 2 (the read end
// of qmail-lspawn's report pipe, which a $QMAILQUEUE filter reading it
// emptied of the reports qmail-send waits for); without a log file it
// gets /dev/null.
func TestInjectStderr(t *testing.T) {
	root := t.TempDir()
	os.Mkdir(filepath.Join(root, "bin"), 0o755)
	fd2 := filepath.Join(root, "fd2")
	script := "#!/bin/sh\ncat >/dev/null\ncat <&1 >/dev/null\nreadlink /proc/self/fd/2 > '" + fd2 + "'\necho said on fd 2 >&2\nexit 0\n"
	if err := os.WriteFile(filepath.Join(root, "bin", "qmail-queue"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(root, "log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	s := &Sched{root: root, opt: Options{Log: logFile}}
	if _, err := s.inject(strings.NewReader("x\n"), "", []string{"ann@example.org"}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(logPath); string(b) != "said on fd 2\n" {
		t.Errorf("log has %q, want qmail-queue's line", b)
	}
	s.opt.Log = io.Discard
	if _, err := s.inject(strings.NewReader("x\n"), "", []string{"ann@example.org"}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(fd2); strings.TrimSpace(string(b)) != os.DevNull {
		t.Errorf("without a log file, qmail-queue's fd 2 is %q, want %s", b, os.DevNull)
	}
}
