package sched

import (
	"strings"
	"testing"
	"time"

	"github.com/hqmail/hqmail/pkg/spawnproto"
)

// TestDSN8BitBodyQueued: qmail-send hands the queued message to the DSN
// (bounce.orig): an ASCII envelope with an 8-bit body gives a
// message/rfc822 part labelled 8bit inside an 8bit multipart/report.
func TestDSN8BitBodyQueued(t *testing.T) {
	root := newTree(t)
	ctl(t, root, "bounceformat", "dsn\n")
	queueMsgText(t, root, "Subject: x\n\nna\xc3\xafve\n", "ann@example.org", "nobody@local.example")
	fail := func(spawnproto.Request) (byte, string) { return 'D', "Sorry, no mailbox here by that name. (#5.1.1)\n" }
	e := start(t, root, fail, ok)
	select {
	case inj := <-e.injects:
		types, _ := checkMIME8bit(t, inj.msg)
		if types[1] != "message/delivery-status" || types[2] != "message/rfc822" {
			t.Errorf("parts %q", types)
		}
		if !strings.Contains(inj.msg, "Content-Type: message/rfc822\nContent-Transfer-Encoding: 8bit\n\nReturn-Path: <ann@example.org>\n") {
			t.Errorf("original part not labelled 8bit:\n%s", inj.msg)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no bounce; log:\n%s", e.log.String())
	}
}
