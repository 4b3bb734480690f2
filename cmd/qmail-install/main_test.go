package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/pkg/install"
	"github.com/hqmail/hqmail/pkg/qerr"
)

// tree installs a tree that -check finds nothing in (qmail's users by
// -uid-base numbers as root, shared otherwise; every program a script).
func tree(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	// qmail's users must reach the tree (t.TempDir and its parent are
	// 0700).
	os.Chmod(filepath.Dir(d), 0o755)
	os.Chmod(d, 0o755)
	root := filepath.Join(d, "q")
	// Every program in the source: -check names one missing from bin/.
	src := t.TempDir()
	for _, name := range install.Programs {
		if err := os.WriteFile(filepath.Join(src, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	o := install.Options{Root: root, Me: "mx.example.org", Source: src}
	if os.Geteuid() == 0 {
		o.UIDBase = 64110
	}
	if err := install.Install(o); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	if code := run([]string{"-root", root, "-check"}, &stderr); code != 0 {
		t.Fatalf("-check of a new tree: exit %d, %q", code, stderr.String())
	}
	return root
}

// TestCheckRefusesInstallFlags: -me and -uid-base say how a tree is
// made, and -check makes nothing: given with -check they are a usage
// error (exit 100) naming them, where they were ignored (exit 0).
func TestCheckRefusesInstallFlags(t *testing.T) {
	root := tree(t)
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"-check", "-me", "x"}, "-me"},
		{[]string{"-uid-base", "7000", "-check"}, "-uid-base"},
		{[]string{"-check", "-me", "", "-uid-base=0"}, "-me or -uid-base"},
	} {
		var stderr bytes.Buffer
		args := append([]string{"-root", root}, tc.args...)
		code := run(args, &stderr)
		want := "qmail-install: usage: -check takes no " + tc.flag + " (it only reads the tree at -root)\n"
		if code != 100 || !strings.HasPrefix(stderr.String(), want) {
			t.Errorf("%q: exit %d, %q; want 100 and %q", args, code, stderr.String(), want)
		}
	}
	// -root is what -check takes, before or after it.
	var stderr bytes.Buffer
	if code := run([]string{"-check", "-root", root}, &stderr); code != 0 {
		t.Errorf("-check -root: exit %d, %q", code, stderr.String())
	}
}

// TestReportStoppedPartWay: a run that failed part way (a full disk while
// the programs were replaced one by one) says to run it again before any
// restart, and gives no restart advice of its own (QA upg: "restart
// hqmail" came before the fatal line, and the restart ran a mix of old
// and new programs); a run that finished gives that advice.
func TestReportStoppedPartWay(t *testing.T) {
	running := "qmail-send (pid 1) still runs programs that an install has since replaced in bin: restart hqmail"
	var stderr bytes.Buffer
	code := report(&install.PartWay{Err: errors.New("unable to write bin/.qmail-tcpok.new: no space left on device")}, running, &stderr)
	out := stderr.String()
	if code != 111 || strings.Contains(out, "restart hqmail (") || strings.Contains(out, running) ||
		!strings.Contains(out, "the run stopped part way: bin/ may hold old and new programs side by side; run qmail-install again") {
		t.Errorf("failed run: exit %d, stderr %q", code, out)
	}
	// A refusal, or a failure before the programs, left bin/ alone: no
	// part-way line (QA rupg: it followed even "refusing to install
	// there", which changes nothing).
	stderr.Reset()
	refused := qerr.Wrap(install.ErrRefused, true, "/x is not empty and is not a qmail tree (no queue/, control/ or etc/ids): refusing to install there")
	if code := report(refused, running, &stderr); code != 100 || stderr.String() != "qmail-install: fatal: "+refused.Error()+"\n" {
		t.Errorf("refused run: exit %d, stderr %q", code, stderr.String())
	}
	stderr.Reset()
	if code := report(nil, running, &stderr); code != 0 || stderr.String() != "qmail-install: note: "+running+"\n" {
		t.Errorf("finished run: exit %d, stderr %q", code, stderr.String())
	}
}
