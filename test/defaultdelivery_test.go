package test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStartScriptsDefaultDelivery: the systemd unit's ExecStart, as sh
// runs it, passes control/defaultdelivery to qmail-start, ./Maildir/ when
// the file is missing or empty, and refuses to start (exit 111, the file
// named) when it exists but is no regular file; and the rc script refuses
// a FIFO there instead of waiting on it for good, as the unit used to at
// boot.
func TestStartScriptsDefaultDelivery(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test skipped under -short")
	}
	unit, err := os.ReadFile(scriptPath(t, "systemd/qmail.service"))
	if err != nil {
		t.Fatal(err)
	}
	var cmdline, path string
	for _, l := range strings.Split(string(unit), "\n") {
		if c, ok := strings.CutPrefix(l, "ExecStart=/bin/sh -c '"); ok {
			cmdline = strings.TrimSuffix(c, "'")
		}
		if p, ok := strings.CutPrefix(l, "Environment=PATH="); ok {
			path = p
		}
	}
	// .qmail programs find the tree's tools by name (|preline procmail),
	// as under the rc script and make run.
	if !strings.HasPrefix(path, "/var/qmail/bin:") || !strings.Contains(path, ":/usr/bin:") {
		t.Errorf("qmail.service sets PATH=%q, want /var/qmail/bin first and /usr/bin", path)
	}
	if cmdline == "" {
		t.Fatal("no ExecStart=/bin/sh -c '...' in qmail.service")
	}
	// systemd turns $$ into $; the tree is a temporary one whose
	// qmail-start prints its argument.
	root := t.TempDir()
	for _, d := range []string{"bin", "control"} {
		os.Mkdir(filepath.Join(root, d), 0o755)
	}
	os.WriteFile(filepath.Join(root, "bin", "qmail-start"), []byte("#!/bin/sh\nprintf '[%s]' \"$1\"\n"), 0o755)
	script := strings.ReplaceAll(strings.ReplaceAll(cmdline, "$$", "$"), "/var/qmail", root)
	ctl := filepath.Join(root, "control", "defaultdelivery")
	run := func(args ...string) (string, int) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Env = []string{"PATH=/usr/bin:/bin", "QMAILHOME=" + root}
		out, err := cmd.CombinedOutput()
		if ctx.Err() != nil {
			t.Fatalf("%q still running after 30s: %s", args, out)
		}
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}
	for _, tc := range []struct {
		name string
		make func() error
		out  string
		code int
	}{
		{"missing", func() error { return nil }, "[./Maildir/]", 0},
		{"empty", func() error { return os.WriteFile(ctl, nil, 0o644) }, "[./Maildir/]", 0},
		{"mbox", func() error { return os.WriteFile(ctl, []byte("./Mailbox\n"), 0o644) }, "[./Mailbox]", 0},
		{"fifo", func() error { return syscall.Mkfifo(ctl, 0o644) }, "unable to read " + ctl + ": not a readable regular file\n", 111},
		{"directory", func() error { return os.Mkdir(ctl, 0o755) }, "unable to read " + ctl + ": not a readable regular file\n", 111},
		// The most one argument can be (with its NUL: MAX_ARG_STRLEN,
		// 131072), and a byte more, which exec would refuse (a sparse
		// file of gigabytes would be read through).
		{"131071 bytes", func() error { return os.WriteFile(ctl, bytes.Repeat([]byte("x"), 128<<10-1), 0o644) }, "[" + strings.Repeat("x", 128<<10-1) + "]", 0},
		{"131072 bytes", func() error { return os.WriteFile(ctl, bytes.Repeat([]byte("x"), 128<<10), 0o644) }, "unable to read " + ctl + ": larger than 131071 bytes, the most one argument can be\n", 111},
	} {
		os.RemoveAll(ctl)
		if err := tc.make(); err != nil {
			t.Fatal(err)
		}
		if out, code := run("/bin/sh", "-c", script); out != tc.out || code != tc.code {
			t.Errorf("unit, %s: exit %d, output %q; want %d, %q", tc.name, code, out, tc.code, tc.out)
		}
	}

	// The rc script with a file too large, then with a FIFO: it says so
	// and starts nothing.
	os.WriteFile(filepath.Join(root, "bin", "qmailctl"), []byte("#!/bin/sh\nexit 1\n"), 0o755)
	if _, err := os.Stat("/etc/default/qmail"); err == nil {
		t.Skip("/etc/default/qmail exists and would change the rc script's settings")
	}
	os.RemoveAll(ctl)
	f, err := os.Create(ctl)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(1 << 30) // sparse: read through, it would take a while
	f.Close()
	out, code := run("/bin/sh", scriptPath(t, "rc/qmail"), "start")
	if code == 0 || !strings.Contains(out, "hqmail did not start: unable to read "+ctl+": larger than 131071 bytes") {
		t.Errorf("rc script with 1 GB of defaultdelivery: exit %d: %s", code, out)
	}

	// The rc script with a FIFO: it says so and starts nothing.
	os.RemoveAll(ctl)
	if err := syscall.Mkfifo(ctl, 0o644); err != nil {
		t.Fatal(err)
	}
	out, code = run("/bin/sh", scriptPath(t, "rc/qmail"), "start")
	if code == 0 || !strings.Contains(out, "hqmail did not start: unable to read "+ctl+": not a readable regular file") {
		t.Errorf("rc script with a FIFO as defaultdelivery: exit %d: %s", code, out)
	}
}
