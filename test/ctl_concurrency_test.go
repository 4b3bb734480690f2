package test

import (
	"fmt"
	"strings"
	"testing"
)

// TestCtlConcurrencyChanged: qmail-send reads the concurrency files only
// at start (a HUP leaves them alone, as in qmail). qmailctl status shows
// what it runs with and, like reload, warns of a file edited since; after
// a restart the warning is gone. A concurrency of 0 is said to stop the
// channel, which status showed as "not held" only.
func TestCtlConcurrencyChanged(t *testing.T) {
	tr := ctlTree(t)
	tr.Control("concurrencylocal", "0\n")
	tr.Control("concurrencyremote", "20\n")
	sys := tr.Start(t, "./Maildir/")
	out, code := ctl(t, tr, "status")
	for _, want := range []string{
		"\nlocal: not held\n",
		"\nconcurrency: local 0, remote 20\n",
		"\nwarning: local delivery stopped: qmail-send started with control/concurrencylocal 0\n",
	} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("status (exit %d) lacks %q:\n%s", code, want, out)
		}
	}
	if strings.Contains(out, "restart") {
		t.Errorf("status asks for a restart:\n%s", out)
	}

	tr.Control("concurrencyremote", "1\n")
	out, code = ctl(t, tr, "reload")
	want := fmt.Sprintf("controls re-read; qmail-send (pid %d) confirmed\n", sys.Pid())
	warn := "warning: control/concurrencyremote says 1, but qmail-send read 20 at start and reads it only then: restart qmail-send to apply it\n"
	if code != 0 || !strings.Contains(out, want) || !strings.Contains(out, "qmailctl: "+warn) {
		t.Errorf("reload (exit %d):\n%s\nwant %q and %q", code, out, want, warn)
	}
	if st := sys.Status(); st["concurrency-remote"] != "20" {
		t.Errorf("sendstatus after the HUP: %v", st)
	}
	out, _ = ctl(t, tr, "status")
	if !strings.Contains(out, "\nconcurrency: local 0, remote 20\n"+"warning: local delivery stopped") || !strings.Contains(out, "\n"+warn) {
		t.Errorf("status with control/concurrencyremote changed:\n%s", out)
	}

	sys.Stop(t)
	tr.Control("concurrencylocal", "3\n")
	tr.Start(t, "./Maildir/")
	out, _ = ctl(t, tr, "status")
	if !strings.Contains(out, "\nconcurrency: local 3, remote 1\n") || strings.Contains(out, "warning") {
		t.Errorf("status after the restart:\n%s", out)
	}
}
