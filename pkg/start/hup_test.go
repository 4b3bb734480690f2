package start

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/internal/testutil"
)

// TestSignalsHeldUntilReady: HUPs and an ALRM that reach qmail-start
// while qmail-send does not catch them yet are held until qmail-send
// closes its fd 7, then forwarded, each kind at least once; qmail-send is
// not killed by them, and a TERM afterwards stops everything with exit 0
// and no alert (QA: a HUP in qmail-start's first milliseconds killed
// qmail-send, "qmail-send was killed by signal 1 (hangup)", exit 111).
//
// The fake qmail-send marks that it runs (qmail-start catches signals
// by then: it starts qmail-send after that), waits with the default
// actions in force until the test has sent its signals and lets it go on,
// then traps HUP, ALRM and TERM and closes fd 7.
func TestSignalsHeldUntilReady(t *testing.T) {
	root := fakeTree(t, map[string]string{
		"qmail-lspawn": "cat >/dev/null\n",
		"qmail-rspawn": "cat >/dev/null\n",
		"qmail-clean":  "cat >/dev/null\n",
		"qmail-send": ": > \"$0.up\"\n" +
			"while [ ! -e \"$0.go\" ]; do sleep 0.01; done\n" +
			"trap 'echo hup >> \"$0.got\"' HUP\n" +
			"trap 'echo alrm >> \"$0.got\"' ALRM\n" +
			"trap 'echo term >> \"$0.got\"; exit 0' TERM\n" +
			"exec 7>&-\n" +
			"while :; do sleep 0.01; done\n",
	})
	send := filepath.Join(root, "bin", "qmail-send")
	var stderr testutil.SyncBuffer
	cmd := startMain(t, root, nil, &stderr, "./Maildir/")
	ended := make(chan mainEnd, 1)
	go func() {
		ws, ok := waitMain(t, cmd)
		ended <- mainEnd{ws, ok}
	}()
	waitFile := func(what string, ok func() bool) {
		t.Helper()
		for i := 0; i < 3000 && !ok(); i++ {
			select {
			case e := <-ended:
				t.Fatalf("qmail-start ended (%v) while waiting for %s; stderr:\n%s", e.ws, what, stderr.String())
			case <-time.After(10 * time.Millisecond):
			}
		}
		if !ok() {
			t.Fatalf("no %s after 30s; stderr:\n%s", what, stderr.String())
		}
	}
	waitFile("qmail-send started", func() bool { return fileExistsT(send + ".up") })
	pid := cmd.Process.Pid
	for i := 0; i < 5; i++ {
		syscall.Kill(pid, syscall.SIGHUP)
	}
	syscall.Kill(pid, syscall.SIGALRM)
	// The signals are on their way to qmail-start; a moment for them to
	// get there before qmail-send goes on (this only makes the test
	// stricter: any that came later would be forwarded at once, to a
	// qmail-send that catches them).
	time.Sleep(100 * time.Millisecond)
	if err := os.WriteFile(send+".go", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	got := func() string { b, _ := os.ReadFile(send + ".got"); return string(b) }
	waitFile("HUP and ALRM handled by qmail-send", func() bool {
		g := got()
		return strings.Contains(g, "hup\n") && strings.Contains(g, "alrm\n")
	})
	syscall.Kill(pid, syscall.SIGTERM)
	if e := <-ended; !e.ok {
		t.Fatal("qmail-start did not end within a minute of the TERM")
	} else if e.ws.Signaled() || e.ws.ExitStatus() != 0 {
		t.Errorf("qmail-start: %v, want qmail-send's exit 0", e.ws)
	}
	if g := got(); !strings.HasSuffix(g, "term\n") {
		t.Errorf("qmail-send got %q, want the TERM last", g)
	}
	if strings.Contains(stderr.String(), "qmail-send") {
		t.Errorf("alert about qmail-send:\n%s", stderr.String())
	}
}

// TestSignalsForwardedToOldSend: a qmail-send that never closes fd 7 (one
// older than the readiness pipe, during an upgrade or a rollback) gets
// the signals held for it after readyWait, not never: a release's HUP
// must reach it, and qmail-start says that it stopped waiting.
func TestSignalsForwardedToOldSend(t *testing.T) {
	t.Setenv(readyWaitEnv, "300ms") // for the child process running Main
	root := fakeTree(t, map[string]string{
		"qmail-lspawn": "cat >/dev/null\n",
		"qmail-rspawn": "cat >/dev/null\n",
		"qmail-clean":  "cat >/dev/null\n",
		"qmail-send": "trap 'echo hup >> \"$0.got\"' HUP\n" +
			"trap 'echo term >> \"$0.got\"; exit 0' TERM\n" +
			": > \"$0.up\"\n" +
			"while :; do sleep 0.01; done\n",
	})
	send := filepath.Join(root, "bin", "qmail-send")
	var stderr testutil.SyncBuffer
	cmd := startMain(t, root, nil, &stderr, "./Maildir/")
	ended := make(chan mainEnd, 1)
	go func() {
		ws, ok := waitMain(t, cmd)
		ended <- mainEnd{ws, ok}
	}()
	got := func() string { b, _ := os.ReadFile(send + ".got"); return string(b) }
	for i := 0; i < 3000 && !fileExistsT(send+".up"); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	syscall.Kill(cmd.Process.Pid, syscall.SIGHUP)
	for i := 0; i < 3000 && !strings.Contains(got(), "hup\n"); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(got(), "hup\n") {
		t.Errorf("the HUP never reached a qmail-send that keeps fd 7 open; it got %q", got())
	}
	if !strings.Contains(stderr.String(), "warning: qmail-send has not said it catches signals after 300ms") {
		t.Errorf("no warning that the wait ended; stderr:\n%s", stderr.String())
	}
	syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
	if e := <-ended; !e.ok {
		t.Fatal("qmail-start did not end within a minute of the TERM")
	} else if e.ws.Signaled() || e.ws.ExitStatus() != 0 {
		t.Errorf("qmail-start: %v, want qmail-send's exit 0", e.ws)
	}
}

// mainEnd is how a qmail-start run by startMain ended (waitMain).
type mainEnd struct {
	ws syscall.WaitStatus
	ok bool // false: it did not end within a minute and was killed
}
