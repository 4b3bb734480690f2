package usertools

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// qmail-local's variables for a message from bob@example.net to
// joe@example.org.
const (
	testUF = "From bob@example.net Thu Nov 26 03:22:00 2026\n"
	testRP = "Return-Path: <bob@example.net>\n"
	testDT = "Delivered-To: joe@example.org\n"
)

func localEnv(t *testing.T) {
	t.Helper()
	t.Setenv("UFLINE", testUF)
	t.Setenv("RPLINE", testRP)
	t.Setenv("DTLINE", testDT)
	t.Setenv("SENDER", "bob@example.net")
	t.Setenv("NEWSENDER", "bob@example.net")
}

// unsetenv removes name for the rest of the test.
func unsetenv(t *testing.T, name string) {
	t.Helper()
	t.Setenv(name, "") // restores the old value at the end
	os.Unsetenv(name)
}

// msgFile is the message as qmail-local hands it over: a regular file
// open for reading at offset 0.
func msgFile(t *testing.T, body []byte) *os.File {
	t.Helper()
	p := filepath.Join(t.TempDir(), "msg")
	if err := os.WriteFile(p, body, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// outFile is a file for a program's output (handed over directly, as
// qmail-local's pipe is), read back with read.
func outFile(t *testing.T) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func read(t *testing.T, f *os.File) []byte {
	t.Helper()
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// within runs f and fails the test if it has not returned after a
// generous bound (a hang is the failure, not slowness).
func within(t *testing.T, what string, f func() int) int {
	t.Helper()
	done := make(chan int, 1)
	go func() { done <- f() }()
	select {
	case code := <-done:
		return code
	case <-time.After(2 * time.Minute):
		t.Fatalf("%s did not return within 2 minutes", what)
		return 0
	}
}

// qpLine tells whether report is the one line qmail's forward and
// condredirect print after a forward: "TOOL: qp N", N the queue's pid.
func qpLine(tool, report string) bool {
	return regexp.MustCompile(`^` + regexp.QuoteMeta(tool) + `: qp [1-9][0-9]*\n$`).MatchString(report)
}
