package sched

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/pkg/spawnproto"
)

// The exit code tells a supervisor whether qmail-send stopped because it
// was asked to (TERM: 0) or because a helper died (111, so that a service
// restarted on failure comes back): qmail-send(8) EXIT CODES.

// cleanReq returns the pipe the scheduler writes its qmail-clean requests
// to: the one request writer among e.closers that is not a spawner's.
func cleanReq(e *env) *io.PipeWriter {
	e.t.Helper()
	for _, c := range e.closers {
		if w, ok := c.(*io.PipeWriter); ok && w != e.reqW[0] && w != e.reqW[1] {
			return w
		}
	}
	e.t.Fatal("no qmail-clean request pipe among the closers")
	return nil
}

// exitCode waits (bounded) for the scheduler to end and returns its code.
func (e *env) exitCode() int {
	e.t.Helper()
	select {
	case code := <-e.done:
		e.exited = true
		return code
	case <-time.After(30 * time.Second):
		e.t.Fatalf("still running; log:\n%s", e.log.String())
	}
	return -1
}

// held is a spawner answer that waits for release (closed at the end of
// the test) before it reports success.
func held(t *testing.T) func(spawnproto.Request) (byte, string) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	return func(spawnproto.Request) (byte, string) {
		<-release
		return 'K', "ok\n"
	}
}

// waitRequests waits until spawner c has read n requests.
func (e *env) waitRequests(c, n int) {
	e.t.Helper()
	e.wait("spawner requests", func() bool { return len(e.spawn[c].requests()) >= n })
}

// sendStatusExiting reports whether sendstatus says TERM was handled.
func sendStatusExiting(root string) bool {
	b, _ := os.ReadFile(filepath.Join(root, "queue/lock/sendstatus"))
	return strings.Contains(string(b), "exiting yes\n")
}

// TestLostHelperExits111: qmail-send that loses qmail-lspawn, qmail-rspawn
// or qmail-clean logs the alert, stops, and exits 111, not 0.
func TestLostHelperExits111(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lose  func(e *env)
		alert string
	}{
		{"qmail-lspawn", func(e *env) { e.reqW[chanLocal].Close() }, "alert: oh no! lost spawn connection! dying...\n"},
		{"qmail-rspawn", func(e *env) { e.reqW[chanRemote].Close() }, "alert: oh no! lost spawn connection! dying...\n"},
		{"qmail-clean", func(e *env) {
			cleanReq(e).Close()
			// qmail-send finds out at its next clean-up request:
			// the one for a new message's todo file.
			queueMsg(e.t, e.root, "ann@example.org", "bob@local.example")
			e.trigger()
		}, "alert: oh no! lost qmail-clean connection! dying...\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := newTree(t)
			mkTrigger(t, root)
			e := start(t, root, ok, ok)
			e.waitLog("status: local 0/10 remote 0/20\n", 1)
			tc.lose(e)
			code := e.exitCode()
			log := e.log.String()
			if code != 111 {
				t.Errorf("exit %d, want 111; log:\n%s", code, log)
			}
			if !strings.Contains(log, tc.alert) || !strings.Contains(log, "status: exiting\n") {
				t.Errorf("log:\n%s", log)
			}
		})
	}
}

// TestLostSpawnerWaitsThenExits111: after losing one spawner qmail-send
// still waits for the deliveries running on the other; with no TERM
// meanwhile it then exits 111.
func TestLostSpawnerWaitsThenExits111(t *testing.T) {
	root := newTree(t)
	release := make(chan struct{})
	slow := func(spawnproto.Request) (byte, string) {
		<-release
		return 'K', "ok\n"
	}
	queueMsg(t, root, "ann@example.org", "x@remote.example")
	e := start(t, root, ok, slow)
	e.waitRequests(chanRemote, 1)
	e.reqW[chanLocal].Close()
	e.waitLog("lost spawn connection", 1)
	select {
	case code := <-e.done:
		e.exited = true
		close(release)
		t.Fatalf("exit %d with a remote delivery running; log:\n%s", code, e.log.String())
	default:
	}
	close(release)
	if code := e.exitCode(); code != 111 {
		t.Errorf("exit %d, want 111; log:\n%s", code, e.log.String())
	}
}

// TestTermWithLostHelperExits0: a stop asked for with TERM ends with 0
// even when a helper dies during it (a process-group TERM reaches the
// spawners too), and also when TERM comes while qmail-send, having lost
// a helper, still waits for running deliveries: either way the stop was
// asked for. The loss is logged all the same.
func TestTermWithLostHelperExits0(t *testing.T) {
	t.Run("helper dies during the stop", func(t *testing.T) {
		root := newTree(t)
		queueMsg(t, root, "ann@example.org", "bob@local.example")
		e := start(t, root, held(t), ok)
		e.waitRequests(chanLocal, 1)
		e.sigs <- syscall.SIGTERM
		e.wait("TERM handled", func() bool { return sendStatusExiting(root) })
		e.reqW[chanLocal].Close() // qmail-lspawn dies, its delivery unfinished
		code := e.exitCode()
		log := e.log.String()
		if code != 0 {
			t.Errorf("exit %d, want 0; log:\n%s", code, log)
		}
		if !strings.Contains(log, "lost spawn connection") || !strings.Contains(log, "status: exiting\n") {
			t.Errorf("log:\n%s", log)
		}
	})
	t.Run("TERM while waiting after the loss", func(t *testing.T) {
		root := newTree(t)
		release := make(chan struct{})
		slow := func(spawnproto.Request) (byte, string) {
			<-release
			return 'K', "ok\n"
		}
		queueMsg(t, root, "ann@example.org", "x@remote.example")
		e := start(t, root, ok, slow)
		e.waitRequests(chanRemote, 1)
		e.reqW[chanLocal].Close()
		e.waitLog("lost spawn connection", 1)
		// TERM, then ALRM to see it handled: signals reach the loop in
		// order, and ALRM moves sendstatus's generation.
		e.sigs <- syscall.SIGTERM
		e.sigs <- syscall.SIGALRM
		e.wait("TERM handled", func() bool {
			b, _ := os.ReadFile(filepath.Join(root, "queue/lock/sendstatus"))
			return strings.Contains(string(b), "generation 1\n")
		})
		close(release)
		if code := e.exitCode(); code != 0 {
			t.Errorf("exit %d, want 0; log:\n%s", code, e.log.String())
		}
	})
}
