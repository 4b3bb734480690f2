package lspawn

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/internal/testutil"
	"github.com/hqmail/hqmail/pkg/cdb"
	"github.com/hqmail/hqmail/pkg/local"
	"github.com/hqmail/hqmail/pkg/spawn"
)

// realLocal is the test binary as the real qmail-local (HQ_LSPAWN_TTY=local),
// one-shot or kept, as cmd/qmail-local runs it.
func realLocal() int {
	if len(os.Args) == 2 && os.Args[1] == "-k" {
		return local.Serve(0, local.Config{Environ: os.Environ(), Root: "/nonexistent"})
	}
	return local.Run(os.Args, local.Config{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		Environ: os.Environ(), Root: "/nonexistent"})
}

// ttyProgram is the .qmail program: does it have a controlling terminal,
// and is any of its fds 0-2 a terminal?
const ttyProgram = `|if (: </dev/tty) 2>/dev/null; then echo TTY-OPEN; else echo NOTTY; fi; ` +
	`if [ -t 0 ] || [ -t 1 ] || [ -t 2 ]; then echo FD-TTY; fi` + "\n"

// ttyParent (HQ_LSPAWN_TTY=parent) runs in a session whose controlling
// terminal is a pty, as qmail-start started by hand from root's shell:
// it makes one delivery through Local.Deliver (kept when HQ_TTY_KEPT is
// set) to the real qmail-local, whose .qmail program reports on the
// terminal; everything goes to stdout.
func ttyParent() int {
	if f, err := os.OpenFile("/dev/tty", os.O_RDWR, 0); err != nil {
		fmt.Printf("parent has no terminal: %v\n", err)
		return 3
	} else {
		f.Close()
	}
	fmt.Println("parent tty: yes")
	root := os.Getenv("HQ_TTY_DIR")
	home := filepath.Join(root, "home")
	for _, d := range []string{filepath.Join(root, "users"), filepath.Join(root, "control"), home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			fmt.Println(err)
			return 3
		}
	}
	os.WriteFile(filepath.Join(home, ".qmail"), []byte(ttyProgram), 0o644)
	uid, gid := os.Getuid(), os.Getgid()
	if uid == 0 {
		// qmail-lspawn as root: the delivery runs as a user (one no
		// account has) who owns the home; the test binary is a copy in
		// the tree (HQ_TTY_DIR and its parent are searchable).
		uid, gid = 4242, 4242
		os.Chown(home, uid, gid)
	}
	recs := []cdb.Record{
		{Key: []byte("!joe\x00"), Data: []byte(val("joe", strconv.Itoa(uid), strconv.Itoa(gid), home, "", ""))},
		{Key: []byte(""), Data: nil},
	}
	if err := cdb.WriteFile(filepath.Join(root, "users", "cdb"), 0o644, recs); err != nil {
		fmt.Println(err)
		return 3
	}
	l := New(root, "./Maildir/")
	l.QmailLocal = os.Getenv("HQ_TTY_EXE")
	l.Switch = os.Getuid() == 0
	os.Setenv("HQ_LSPAWN_TTY", "local") // for qmail-local, which inherits it
	kept := os.Getenv("HQ_TTY_KEPT") != ""
	if kept {
		l.NewKeep()
		defer l.Keep.Close()
	}
	m, err := os.Open(os.DevNull)
	if err != nil {
		fmt.Println(err)
		return 3
	}
	pr, pw, _ := os.Pipe()
	d := &spawn.Delivery{Mess: "1/1", Sender: "s@x", Recipient: "joe@x", At: 3, Message: m, Output: pw}
	st, err := l.Deliver(d)
	pw.Close()
	if err != nil {
		fmt.Println(err)
		return 3
	}
	var out bytes.Buffer
	out.ReadFrom(pr)
	letter, text := l.Report(st, out.Bytes())
	fmt.Printf("report %c %q\n", letter, text)
	if kept {
		fmt.Printf("kept %d\n", l.Keep.Idle())
	}
	return 0
}

// TestDeliveryHasNoTerminal: a delivery started by a qmail-lspawn that
// has a controlling terminal (root's, when qmail-start is started by hand
// from a shell) has none, nor has its .qmail program, and none of the
// program's fds 0-2 is a terminal: one-shot and kept.
func TestDeliveryHasNoTerminal(t *testing.T) {
	_, pts := testutil.OpenPty(t)
	for _, kept := range []bool{false, true} {
		name := "one-shot"
		if kept {
			name = "kept"
		}
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
			dir := t.TempDir()
			for _, d := range []string{dir, filepath.Dir(dir)} {
				if err := os.Chmod(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			exe := filepath.Join(dir, "qmail-local")
			testutil.CopyTestBinary(t, exe)
			cmd.Env = append(os.Environ(), "HQ_LSPAWN_TTY=parent", "HQ_TTY_DIR="+dir, "HQ_TTY_EXE="+exe)
			if kept {
				cmd.Env = append(cmd.Env, "HQ_TTY_KEPT=1")
			}
			// A session of its own with the pty as controlling terminal
			// (fd 0, the pty, is the Ctty).
			cmd.Stdin = pts
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				t.Fatalf("%v: %s", err, out.String())
			}
			o := out.String()
			if !strings.Contains(o, "parent tty: yes") {
				t.Fatalf("the parent had no terminal: %s", o)
			}
			if strings.Contains(o, "TTY-OPEN") || strings.Contains(o, "FD-TTY") || !strings.Contains(o, `report K "NOTTY\ndid 0+0+1\n"`) {
				t.Errorf("delivery: %s", o)
			}
			if kept && !strings.Contains(o, "kept 1") {
				t.Errorf("the delivery was not kept: %s", o)
			}
		})
	}
}
