package local

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestEnvironPut(t *testing.T) {
	tests := []struct {
		start []string
		key   string
		value string
		want  []string
	}{
		{nil, "A", "1", []string{"A=1"}},
		{[]string{"A=1", "B=2", "C=3"}, "A", "x", []string{"C=3", "B=2", "A=x"}},
		{[]string{"A=1", "B=2", "C=3"}, "C", "x", []string{"A=1", "B=2", "C=x"}},
		{[]string{"A=1", "AB=2"}, "A", "", []string{"AB=2", "A="}},
		{[]string{"A=1", "B=2", "A=3"}, "A", "4", []string{"B=2", "A=4"}},
	}
	for _, tt := range tests {
		e := environ(append([]string(nil), tt.start...))
		e.put(tt.key, tt.value)
		if !reflect.DeepEqual([]string(e), tt.want) {
			t.Errorf("put(%q,%q) on %v = %v, want %v", tt.key, tt.value, tt.start, e, tt.want)
		}
		if v, ok := e.get(tt.key); !ok || v != tt.value {
			t.Errorf("get(%q) = %q %v", tt.key, v, ok)
		}
	}
}

func TestFromSender(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "MAILER-DAEMON"},
		{"a@b", "a@b"},
		{"a b\tc\nd@e", "a-b-c-d@e"},
		{"\xff@x", "\xff@x"},
	}
	for _, tt := range tests {
		if got := fromSender(tt.in); got != tt.want {
			t.Errorf("fromSender(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseArgs(t *testing.T) {
	eight := []string{"u", "/h", "l", "-", "e", "d", "s", "./Maildir/"}
	tests := []struct {
		name string
		argv []string
		doit bool
		err  string
	}{
		{"plain", append([]string{"qmail-local"}, eight...), true, ""},
		{"dry", append([]string{"qmail-local", "-n"}, eight...), false, ""},
		{"dry then N", append([]string{"qmail-local", "-nN"}, eight...), true, ""},
		{"double dash", append([]string{"qmail-local", "-n", "--"}, eight...), false, ""},
		{"double dash word", append([]string{"qmail-local", "-n", "--x"}, eight...), false, ""},
		{"bad option", append([]string{"/x/bin/qmail-local", "-q"}, eight...), true, "qmail-local: illegal option -- q\n" + usageText},
		{"8-bit option", append([]string{"qmail-local", "-\xe9"}, eight...), true, "qmail-local: illegal option -- \xe9\n" + usageText},
		{"no argv", nil, true, usageText},
		{"too few", []string{"qmail-local", "u", "/h"}, true, usageText},
		{"too many", append(append([]string{"qmail-local"}, eight...), "x"), true, usageText},
		{"relative home", []string{"qmail-local", "u", "h", "l", "", "", "d", "s", "x"}, true, usageText},
	}
	for _, tt := range tests {
		d := &delivery{}
		err := d.parseArgs(tt.argv)
		got := ""
		if err != nil {
			got = err.text
			if err.code != 100 {
				t.Errorf("%s: exit %d, want 100", tt.name, err.code)
			}
		}
		if got != tt.err || (err == nil && d.doit != tt.doit) {
			t.Errorf("%s: err %q doit %v, want %q %v", tt.name, got, d.doit, tt.err, tt.doit)
		}
	}
}

// TestRunInProcess drives Run with real files for fd 0/1/2: an mbox and a
// program delivery, and the environment the program sees.
func TestRunInProcess(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	os.Mkdir(home, 0o755)
	os.WriteFile(filepath.Join(home, ".qmail-x-default"), []byte("./box\n|printf '%s|%s|%s' \"$DEFAULT\" \"$NEWSENDER\" \"$RECIPIENT\"\n"), 0o644)
	msg := filepath.Join(dir, "msg")
	os.WriteFile(msg, []byte("Subject: hi\n\nFrom me\n"), 0o600)
	in, _ := os.Open(msg)
	defer in.Close()
	out, _ := os.Create(filepath.Join(dir, "out"))
	defer out.Close()
	errf, _ := os.Create(filepath.Join(dir, "err"))
	defer errf.Close()
	code := Run([]string{"qmail-local", "--", "u", home, "u-x-y", "-", "x-y", "example.org", "s@example.net", "./Maildir/"},
		Config{Stdin: in, Stdout: out, Stderr: errf, Environ: []string{"PATH=/usr/bin:/bin"}, Root: dir,
			Now: time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)})
	stdout, _ := os.ReadFile(out.Name())
	stderr, _ := os.ReadFile(errf.Name())
	if code != 0 || string(stdout) != "y|s@example.net|u-x-y@example.orgdid 1+0+1\n" || len(stderr) != 0 {
		t.Errorf("code %d stdout %q stderr %q", code, stdout, stderr)
	}
	box, _ := os.ReadFile(filepath.Join(home, "box"))
	want := "From s@example.net Mon Jan 05 08:00:00 2026\nReturn-Path: <s@example.net>\nDelivered-To: u-x-y@example.org\nSubject: hi\n\n>From me\n\n"
	if string(box) != want {
		t.Errorf("box = %q, want %q", box, want)
	}
	if !strings.HasPrefix(string(box), "From ") {
		t.Error("no From_ line")
	}
}

// TestForwardOutsideTree: with an absolute $QMAILQUEUE, a forward works
// even when the tree's root does not exist.
func TestForwardOutsideTree(t *testing.T) {
	wd, _ := os.Getwd()
	defer os.Chdir(wd)
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	os.Mkdir(home, 0o755)
	os.WriteFile(filepath.Join(home, ".qmail"), []byte("&bob@example.com\n"), 0o644)
	capture := filepath.Join(dir, "qq")
	os.WriteFile(capture, []byte("#!/bin/sh\ncat > '"+dir+"/message'\ncat <&1 > '"+dir+"/envelope'\n"), 0o755)
	code, report := deliverPlain(t, dir, home, Config{Root: filepath.Join(dir, "no-such-root"),
		Environ: []string{"PATH=/usr/bin:/bin", "QMAILQUEUE=" + capture}})
	if code != 0 || !strings.HasPrefix(report, "did 0+1+0\nqp ") {
		t.Fatalf("code %d report %q", code, report)
	}
	env, _ := os.ReadFile(filepath.Join(dir, "envelope"))
	m, _ := os.ReadFile(filepath.Join(dir, "message"))
	if string(env) != "Fs@example.net\x00Tbob@example.com\x00\x00" || string(m) != "Delivered-To: u@example.org\nSubject: hi\n\nbody\n" {
		t.Errorf("envelope %q message %q", env, m)
	}
}

// TestDotQmailTooLarge: a .qmail file of gigabytes (sparse, as truncate
// makes one) defers the delivery with a report that says why, and is not
// read into memory.
func TestDotQmailTooLarge(t *testing.T) {
	wd, _ := os.Getwd()
	defer os.Chdir(wd)
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	os.Mkdir(home, 0o755)
	big, err := os.Create(filepath.Join(home, ".qmail"))
	if err != nil {
		t.Fatal(err)
	}
	if err := big.Truncate(10 << 30); err != nil {
		t.Skipf("no sparse file of 10 GB here: %v", err)
	}
	big.Close()
	code, report := deliverPlain(t, dir, home, Config{Root: dir, Environ: []string{"PATH=/usr/bin:/bin"}})
	if code != 111 || !strings.Contains(report, ".qmail is larger than 64 MB. (#4.3.0)") {
		t.Errorf("code %d report %q", code, report)
	}
	if _, err := os.Stat(filepath.Join(home, "Maildir")); err == nil {
		t.Error("delivered to the default despite the .qmail file")
	}
}

// deliverPlain runs qmail-local in process for the plain address u (home
// home, sender s@example.net) with a short message written in dir, cfg
// giving Root and Environ, and returns its exit code and report.
func deliverPlain(t *testing.T, dir, home string, cfg Config) (int, string) {
	t.Helper()
	msg := filepath.Join(dir, "msg")
	if err := os.WriteFile(msg, []byte("Subject: hi\n\nbody\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(msg)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cfg.Stdin, cfg.Stdout, cfg.Stderr = in, out, out
	code := Run([]string{"qmail-local", "u", home, "u", "", "", "example.org", "s@example.net", "./Maildir/"}, cfg)
	report, _ := os.ReadFile(out.Name())
	return code, string(report)
}
