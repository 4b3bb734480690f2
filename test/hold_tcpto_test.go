package test

import (
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/hqmail/hqmail/test/harness"
)

// TestHoldReleaseClearsTcpto: releasing remote delivery with the classic
// "rm control/holdremote; kill -HUP" (no qmailctl) forgets the connect
// time-outs recorded while the link was down.
func TestHoldReleaseClearsTcpto(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test skipped under -short")
	}
	tr := harness.Install(t)
	tr.Control("holdremote", "1\n")
	sys := tr.Start(t, "./Maildir/")
	p := tr.Path("queue", "lock", "tcpto")
	rec := make([]byte, 1024)
	copy(rec, []byte{192, 0, 2, 9, 5, 0, 0, 0, 0x10, 0x20, 0x30, 0x40})
	// Overwrite in place: the file keeps its owner (qmailr) and mode.
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(rec, 0)
	f.Close()

	// A HUP that changes nothing keeps the table.
	sys.HUP(t)
	if b, _ := os.ReadFile(p); !bytes.Equal(b, rec) {
		t.Fatal("tcpto changed on a HUP that released nothing")
	}
	tr.RemoveControl("holdremote")
	sys.HUP(t)
	sys.WaitLog(t, "hold: remote released", 10*time.Second)
	if !harness.Eventually(10*time.Second, func() bool {
		b, _ := os.ReadFile(p)
		return bytes.Equal(b, make([]byte, 1024))
	}) {
		t.Fatalf("tcpto not cleared on release; log:\n%s", sys.Log())
	}
	if n := sys.Count("unable to clear lock/tcpto"); n != 0 {
		t.Fatalf("qmail-send could not clear tcpto:\n%s", sys.Log())
	}
}
