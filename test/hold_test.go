package test

import (
	"fmt"
	"testing"
	"time"

	"github.com/hqmail/hqmail/test/harness"
)

// holdSink starts a recording SMTP sink on a fresh loopback address.
func holdSink(t *testing.T) (*sink, *trackingListener) {
	ln := &trackingListener{Listener: listen(t, "", 2525)}
	return startSink(t, ln, sinkOpts{}), ln
}

// farTree is a tree whose mail for far.example goes to a fresh holdSink.
func farTree(t *testing.T) (*harness.Tree, *sink, *trackingListener) {
	t.Helper()
	tr := schedTree(t, nil)
	s, ln := holdSink(t)
	tr.Control("smtproutes", fmt.Sprintf("far.example:%s:%d\n", s.IP, s.Port))
	return tr, s, ln
}

func TestHoldRemote200(t *testing.T) {
	tr, s, ln := farTree(t)
	tr.Control("holdremote", "1\n")
	sys := tr.Start(t, "./Maildir/")
	sys.WaitLog(t, "hold: remote held, 0 messages waiting", 10*time.Second)
	const total = 200
	queueN(t, tr, 0, total, "box@testhost.example", "joe@far.example")
	harness.WaitFor(t, 60*time.Second, func() bool { return sys.Count("new msg ") >= total })
	time.Sleep(5 * time.Second)
	if n := ln.accepted.Load(); n != 0 {
		t.Fatalf("%d connections to the MX while held", n)
	}
	if n := sys.Count("starting delivery"); n != 0 {
		t.Fatalf("%d deliveries started while held", n)
	}
	if st := sys.Status(); st["holdremote"] != "all" || st["since-remote"] == "0" {
		t.Errorf("sendstatus: %v", st)
	}
	tr.RemoveControl("holdremote")
	released := time.Now()
	sys.HUP(t)
	harness.WaitFor(t, 60*time.Second, func() bool { return len(s.Messages()) >= total })
	t.Logf("%d messages accepted by the MX %v after rm holdremote + HUP (target: 5 s)", total, time.Since(released))
	sys.WaitLog(t, fmt.Sprintf("hold: remote released, %d messages due now", total), time.Second)
	sys.WaitLogCount(t, "end msg ", total, 30*time.Second)
	sys.Stop(t)
}

func TestHoldRemoteAfterDeferral(t *testing.T) {
	tr := schedTree(t, nil)
	// The MX is down at first: connection refused (nothing listens).
	ln := listen(t, "", 2525)
	ip, port := hostOf(ln), portOf(ln)
	ln.Close()
	tr.Control("smtproutes", fmt.Sprintf("far.example:%s:%d\n", ip, port))
	sys := tr.Start(t, "./Maildir/")
	const total = 20
	queueN(t, tr, 0, total, "box@testhost.example", "joe@far.example")
	sys.WaitLogCount(t, "deferral:", total, 60*time.Second)
	tr.Control("holdremote", "")
	sys.HUP(t)
	sys.WaitLog(t, fmt.Sprintf("hold: remote held, %d messages waiting", total), 5*time.Second)
	// The link comes up; the retry times lie 400 s ahead. qmail-remote's
	// tcpto may remember the refused host: clearing it on release is the
	// job of whoever removes the hold (qmailctl / the link hook).
	ln2 := listen(t, ip, port)
	s := startSink(t, ln2, sinkOpts{})
	if _, code := tr.Run(t, nil, "qmail-tcpok"); code != 0 {
		t.Logf("qmail-tcpok exited %d", code)
	}
	tr.RemoveControl("holdremote")
	released := time.Now()
	sys.HUP(t)
	harness.WaitFor(t, 60*time.Second, func() bool { return len(s.Messages()) >= total })
	t.Logf("%d deferred messages accepted %v after release (retry times were ~400 s ahead)", total, time.Since(released))
	sys.Stop(t)
}

func TestHoldRemoteDomainList(t *testing.T) {
	tr := schedTree(t, nil)
	held, lnHeld := holdSink(t)
	free, _ := holdSink(t)
	tr.Control("smtproutes", fmt.Sprintf("held.example:%s:%d\n.sub.example:%s:%d\nfree.example:%s:%d\n",
		held.IP, held.Port, held.IP, held.Port, free.IP, free.Port))
	tr.Control("holdremote", "Held.Example\n.sub.example\n")
	sys := tr.Start(t, "./Maildir/")
	if err := tr.Queue(t, "box@testhost.example", []string{"a@held.example", "b@free.example", "c@x.sub.example"}, []byte("Subject: d\n\nd\n")); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, 30*time.Second, func() bool { return len(free.Messages()) == 1 })
	time.Sleep(time.Second)
	if n := lnHeld.accepted.Load(); n != 0 {
		t.Fatalf("%d connections for held domains", n)
	}
	if st := sys.Status(); st["holdremote"] != "held.example .sub.example" {
		t.Errorf("sendstatus: %v", st)
	}
	tr.Control("holdremote", ".sub.example\n")
	sys.HUP(t)
	harness.WaitFor(t, 30*time.Second, func() bool { return len(held.Messages()) == 1 })
	tr.RemoveControl("holdremote")
	sys.HUP(t)
	harness.WaitFor(t, 30*time.Second, func() bool { return len(held.Messages()) == 2 })
	sys.WaitLog(t, "end msg ", 30*time.Second)
	sys.Stop(t)
}
