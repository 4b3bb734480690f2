package usertools

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExitCodeMaps(t *testing.T) {
	for _, tc := range []struct {
		code     int
		meaning  string
		except   int
		bounce   int
		say      bool
		redirect int
		forward  bool
	}{
		{0, "success", 100, 100, true, 99, true},
		{100, "permanent failure", 0, 0, false, 0, false},
		{111, "temporary failure", 111, 111, false, 111, false},
		{1, "false(1)", 0, 0, false, 0, false},
		{99, "done, skip the rest", 0, 0, false, 0, false},
		{64, "EX_USAGE", 0, 0, false, 0, false},
		{75, "EX_TEMPFAIL", 0, 0, false, 0, false},
		{127, "sh: not found", 0, 0, false, 0, false},
	} {
		if got := exceptCode(tc.code); got != tc.except {
			t.Errorf("except: %d (%s) -> %d, want %d", tc.code, tc.meaning, got, tc.except)
		}
		if got, say := bounceAfter(tc.code); got != tc.bounce || say != tc.say {
			t.Errorf("bouncesaying: %d (%s) -> %d %v, want %d %v", tc.code, tc.meaning, got, say, tc.bounce, tc.say)
		}
		if got, fwd := redirectAfter(tc.code); got != tc.redirect || fwd != tc.forward {
			t.Errorf("condredirect: %d (%s) -> %d %v, want %d %v", tc.code, tc.meaning, got, fwd, tc.redirect, tc.forward)
		}
	}
}

func TestExceptMain(t *testing.T) {
	for _, tc := range []struct {
		argv   []string
		code   int
		stderr string
	}{
		{[]string{"true"}, 100, ""},
		{[]string{"false"}, 0, ""},
		{[]string{"sh", "-c", "exit 100"}, 0, ""},
		{[]string{"sh", "-c", "exit 111"}, 111, "except: fatal: sh exited 111: a temporary failure; the delivery will be tried again\n"},
		{[]string{"sh", "-c", "exit 99"}, 0, ""},
		{[]string{"sh", "-c", "kill -9 $$"}, 111, "except: fatal: sh was killed by signal 9\n"},
		{[]string{"no-such-program-here"}, 111, "except: fatal: unable to run no-such-program-here: not found in $PATH\n"},
		{nil, 100, "usage: " + exceptUsage + "\n"},
	} {
		var stdout, stderr bytes.Buffer
		code := ExceptMain(tc.argv, msgFile(t, nil), &stdout, &stderr)
		if code != tc.code || stderr.String() != tc.stderr {
			t.Errorf("%q: exit %d, stderr %q; want %d, %q", tc.argv, code, stderr.String(), tc.code, tc.stderr)
		}
	}
	// The program reads the message and writes the report.
	var stdout, stderr bytes.Buffer
	code := ExceptMain([]string{"sh", "-c", "grep -q '^Subject: spam' && echo matched"}, msgFile(t, []byte("Subject: spam\n\nx\n")), &stdout, &stderr)
	if code != 100 || stdout.String() != "matched\n" {
		t.Errorf("grep: exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
}

func TestBouncesayingMain(t *testing.T) {
	for _, tc := range []struct {
		args           []string
		code           int
		stdout, stderr string
	}{
		{[]string{"go away"}, 100, "go away\n", ""},
		{[]string{"go away", "true"}, 100, "go away\n", ""},
		{[]string{"go away", "false"}, 0, "", ""},
		{[]string{"go away", "sh", "-c", "exit 100"}, 0, "", ""},
		{[]string{"go away", "sh", "-c", "exit 99"}, 0, "", ""},
		{[]string{"go away", "sh", "-c", "echo checking; exit 111"}, 111, "checking\n", "bouncesaying: fatal: sh exited 111: a temporary failure; the delivery will be tried again\n"},
		{[]string{"go away", "sh", "-c", "kill -9 $$"}, 111, "", "bouncesaying: fatal: sh was killed by signal 9\n"},
		{[]string{"go away", "no-such-program-here"}, 111, "", "bouncesaying: fatal: unable to run no-such-program-here: not found in $PATH\n"},
		{[]string{"No mail from spammers.", "grep", "-q", "^From: .*@spam.example"}, 100, "No mail from spammers.\n", ""},
		{[]string{"No mail from spammers.", "grep", "-q", "^From: .*@ham.example"}, 0, "", ""},
		{nil, 100, "", "usage: " + bouncesayingUsage + "\n"},
	} {
		var stdout, stderr bytes.Buffer
		msg := msgFile(t, []byte("From: x@spam.example\nSubject: hi\n\nbody\n"))
		code := BouncesayingMain(tc.args, msg, &stdout, &stderr)
		if code != tc.code || stdout.String() != tc.stdout || stderr.String() != tc.stderr {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %d, %q, %q", tc.args, code, stdout.String(), stderr.String(), tc.code, tc.stdout, tc.stderr)
		}
	}
}

func TestCondredirectMain(t *testing.T) {
	body := "From: x@example.net\nSubject: hi\n\nno final newline"
	for _, tc := range []struct {
		argv    []string
		qqExit  int
		code    int
		queued  bool
		stderr  string
		comment string
	}{
		{[]string{"true"}, 0, 99, true, "", "match: forward, skip the rest"},
		{[]string{"sh", "-c", "cat >/dev/null"}, 0, 99, true, "", "the program read the message; the forward is still whole"},
		{[]string{"grep", "-q", "^Subject: hi"}, 0, 99, true, "", "a test on the message"},
		{[]string{"false"}, 0, 0, false, "", "no match: go on"},
		{[]string{"sh", "-c", "exit 100"}, 0, 0, false, "", "100 is no match too"},
		{[]string{"sh", "-c", "exit 111"}, 0, 111, false, "condredirect: fatal: sh exited 111: a temporary failure; the delivery will be tried again\n", "temporary failure"},
		{[]string{"sh", "-c", "kill -9 $$"}, 0, 111, false, "condredirect: fatal: sh was killed by signal 9\n", "crash"},
		{[]string{"true"}, 31, 100, true, "condredirect: fatal: unable to forward the message: mail server permanently rejected message (#5.3.0)\n", "queue refuses"},
		{[]string{"true"}, 53, 111, true, "condredirect: fatal: unable to forward the message: qq write error or disk full (#4.3.0)\n", "queue fails"},
	} {
		t.Run(tc.comment, func(t *testing.T) {
			localEnv(t)
			dir := captureQueue(t, tc.qqExit)
			var stdout, stderr bytes.Buffer
			args := append([]string{"carol@example.com"}, tc.argv...)
			code := CondredirectMain(t.TempDir(), args, msgFile(t, []byte(body)), &stdout, &stderr)
			if code != tc.code || tc.code != 99 && stderr.String() != tc.stderr {
				t.Fatalf("exit %d, stderr %q; want %d, %q", code, stderr.String(), tc.code, tc.stderr)
			}
			msg, env, ran := queued(t, dir)
			if ran != tc.queued {
				t.Fatalf("queued %v, want %v", ran, tc.queued)
			}
			if !ran {
				return
			}
			if msg != testDT+body {
				t.Errorf("queued message %q", msg)
			}
			if env != "Fbob@example.net\x00Tcarol@example.com\x00\x00" {
				t.Errorf("envelope %q", env)
			}
			if tc.code == 99 && (!qpLine("condredirect", stderr.String()) || stdout.Len() != 0) {
				t.Errorf("stderr %q is not one \"condredirect: qp N\" line, or stdout %q is not empty", stderr.String(), stdout.String())
			}
		})
	}
}

func TestCondredirectPipeAndVariables(t *testing.T) {
	localEnv(t)
	dir := captureQueue(t, 0)
	// A message on a pipe is kept for the forward even after the program
	// read it.
	var stdout, stderr bytes.Buffer
	if code := CondredirectMain(t.TempDir(), []string{"a@b", "cat"}, pipeWith(t, "Subject: p\n\nbody\n"), &stdout, &stderr); code != 99 {
		t.Fatalf("exit %d, %q", code, stderr.String())
	}
	if msg, _, _ := queued(t, dir); msg != testDT+"Subject: p\n\nbody\n" {
		t.Errorf("queued %q", msg)
	}
	// A bounce keeps its empty sender.
	t.Setenv("NEWSENDER", "")
	if code := CondredirectMain(t.TempDir(), []string{"a@b", "true"}, msgFile(t, []byte("x\n")), &stdout, &stderr); code != 99 {
		t.Fatalf("empty sender: exit %d, %q", code, stderr.String())
	}
	if _, env, _ := queued(t, dir); env != "F\x00Ta@b\x00\x00" {
		t.Errorf("envelope %q", env)
	}
	// Without qmail-local's variables nothing runs.
	for _, v := range []string{"NEWSENDER", "DTLINE"} {
		localEnv(t)
		unsetenv(t, v)
		os.Remove(filepath.Join(dir, "message"))
		mark := filepath.Join(t.TempDir(), "ran")
		stderr.Reset()
		code := CondredirectMain(t.TempDir(), []string{"a@b", "touch", mark}, msgFile(t, []byte("x\n")), &stdout, &stderr)
		if code != 100 || !strings.Contains(stderr.String(), "$"+v+" is not set") {
			t.Errorf("no %s: exit %d, %q", v, code, stderr.String())
		}
		if _, err := os.Stat(mark); err == nil {
			t.Errorf("no %s: the program ran", v)
		}
	}
	for _, args := range [][]string{nil, {"a@b"}, {"", "true"}} {
		stderr.Reset()
		if code := CondredirectMain(t.TempDir(), args, msgFile(t, nil), &stdout, &stderr); code != 100 || stderr.String() != "usage: "+condredirectUsage+"\n" {
			t.Errorf("%q: exit %d, %q", args, code, stderr.String())
		}
	}
}

// TestNoPath: with no $PATH at all (env -i), a program is looked for in
// /bin and /usr/bin, as qmail's tools do; its environment stays without
// PATH.
func TestNoPath(t *testing.T) {
	saved, had := os.LookupEnv("PATH")
	os.Unsetenv("PATH")
	t.Cleanup(func() {
		if had {
			os.Setenv("PATH", saved)
		}
	})
	var stdout, stderr bytes.Buffer
	code := ExceptMain([]string{"env"}, msgFile(t, nil), &stdout, &stderr)
	if code != 100 || strings.Contains("\n"+stdout.String(), "\nPATH=") || stderr.Len() != 0 {
		t.Errorf("exit %d, stdout %q, stderr %q; want 100 (env found and run) and no PATH", code, stdout.String(), stderr.String())
	}
}

// TestHelp: -h or --help as the first argument is answered with the text
// and exit 100 (in a .qmail file 0 would mean "done, go on"); anything
// else is left to the program, and nothing is written.
func TestHelp(t *testing.T) {
	const text = "usage: tool x\n  More.\n"
	for _, tc := range []struct {
		args  []string
		asked bool
	}{
		{[]string{"-h"}, true},
		{[]string{"--help"}, true},
		{[]string{"-h", "x"}, true},
		{nil, false},
		{[]string{"x", "-h"}, false},
		{[]string{"-help"}, false},
		{[]string{"-H"}, false},
		{[]string{"--", "-h"}, false},
		{[]string{""}, false},
	} {
		var w strings.Builder
		code, asked := Help(tc.args, text, &w)
		want, wantCode := "", 0
		if tc.asked {
			want, wantCode = text, 100
		}
		if asked != tc.asked || code != wantCode || w.String() != want {
			t.Errorf("%q: %d %v %q; want %d %v %q", tc.args, code, asked, w.String(), wantCode, tc.asked, want)
		}
	}
}
