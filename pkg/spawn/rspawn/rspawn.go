// Package rspawn is the remote half of qmail-rspawn (spec/delivery.md §5):
// it runs qmail-remote for one recipient as the spawner's own user
// (qmailr) and turns qmail-remote's output into a spawner report.
//
// qmail-remote's output is NUL-terminated pieces: one recipient report
// ("r", "h<text>" permanent, "s<text>" temporary) and one message report
// ("K|Z|D<text>"); failures before RCPT give only the message report.
package rspawn

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/hqmail/hqmail/pkg/pollfd"
	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/remote"
	"github.com/hqmail/hqmail/pkg/spawn"
	"github.com/hqmail/hqmail/pkg/tcpto"
)

// Remote starts qmail-remote. Program is its path; Env, when non-nil,
// replaces the environment. Keep, when set, runs deliveries through kept
// qmail-remote processes (see Pool) while control/smtpcache allows.
type Remote struct {
	Program string
	Env     []string
	Keep    *Pool

	mu        sync.Mutex
	running   map[*os.Process]struct{} // one-shot qmail-remotes
	abandoned bool
}

// New returns the Remote of the tree at root: ROOT/bin/qmail-remote in keep
// mode, or $QMAILREMOTE when set (as maintained qmail versions allow),
// started once per delivery since another program need not know keep mode.
func New(root string) *Remote {
	p := filepath.Join(root, "bin", "qmail-remote")
	if q := os.Getenv("QMAILREMOTE"); q != "" {
		return &Remote{Program: q}
	}
	return &Remote{Program: p, Keep: NewPool(p, root, nil)}
}

// Deliver makes the delivery through a kept qmail-remote when keep mode is
// on, and otherwise runs "qmail-remote host sender recipient" with the
// message on fd 0 and the output pipe on fds 1 and 2. A program that does
// not start is reported with the reason (spawn.NotStarted).
func (r *Remote) Deliver(d *spawn.Delivery) (spawn.Status, error) {
	if r.Keep != nil {
		if st, ok := r.Keep.Deliver(d); ok {
			return st, nil
		}
	}
	cmd := exec.Command(r.Program, d.Domain(), d.Sender, d.Recipient)
	cmd.Args[0] = "qmail-remote"
	cmd.Env = r.Env
	cmd.Stdin = d.Message
	cmd.Stdout = d.Output
	cmd.Stderr = d.Output
	if err := cmd.Start(); err != nil {
		return spawn.NotStarted("qmail-remote", err), nil
	}
	r.mu.Lock()
	if r.running == nil {
		r.running = make(map[*os.Process]struct{})
	}
	r.running[cmd.Process] = struct{}{}
	if r.abandoned {
		cmd.Process.Signal(syscall.SIGTERM)
	}
	r.mu.Unlock()
	pollfd.Wait(cmd)
	r.mu.Lock()
	delete(r.running, cmd.Process)
	r.mu.Unlock()
	return spawn.StatusOf(cmd.ProcessState), nil
}

// Abandon implements spawn.Abandoner: qmail-send has gone without waiting
// for the running deliveries, so no result of theirs will be recorded and
// the next qmail-send makes each again. Every running qmail-remote (one
// started later too) gets SIGTERM, on which it gives up a delivery whose
// final dot it has not yet sent (the peer never sees it) and finishes one
// whose dot has gone out: only a delivery the peer may have accepted
// already can still arrive twice. Idle kept processes are closed.
func (r *Remote) Abandon() {
	r.mu.Lock()
	r.abandoned = true
	for p := range r.running {
		p.Signal(syscall.SIGTERM)
	}
	r.mu.Unlock()
	if r.Keep != nil {
		r.Keep.Signal(syscall.SIGTERM)
	}
}

// Report implements spawn.Spawner.
func (r *Remote) Report(st spawn.Status, output []byte) (byte, string) {
	return Translate(st, output)
}

// goCrash is the exit status of a Go program that died of a runtime fatal
// error or an unrecovered panic; no qmail program exits 2 on purpose.
const goCrash = 2

// Fixed texts of Translate. TextCrashed is the crash report when the
// output holds no reason (spawn.CrashText).
const (
	TextCrashed  = "qmail-remote crashed.\n"
	TextNoRun    = "Unable to run qmail-remote.\n"
	TextNoOutput = "qmail-remote produced no output.\n"
)

// piece returns s up to its first NUL (all of s if there is none).
func piece(s []byte) []byte {
	if i := bytes.IndexByte(s, 0); i >= 0 {
		return s[:i]
	}
	return s
}

// Translate turns qmail-remote's exit status and output into a report
// letter and text, as qmail-rspawn does.
//
// Exit status: TERM -> Z stopped (remote.TextStopped); another signal or
// exit 2 -> Z crashed (with the Go runtime's reason
// when the output holds one: spawn.CrashText); 111 -> Z unable to run;
// other non-zero -> D unable to run; no output -> Z no output. On exit 0:
// result = the letter of the first complete (NUL-terminated) piece that
// starts with K, Z or D (none: D). The letter sent is result, except that a first byte 's'
// makes it Z and 'h' makes it D. The text is the first piece minus its
// first byte (only when some NUL follows that byte), then, when result is
// not better than the letter sent (K > Z > D), the piece after the first
// NUL minus its letter if it starts with K, Z or D.
func Translate(st spawn.Status, out []byte) (byte, string) {
	if st.Signaled && st.Signal == syscall.SIGTERM {
		// A one-shot qmail-remote ignores TERM from its final dot on:
		// one that died of it had sent no dot (qmail-remote(8), SIGNALS).
		return 'Z', remote.TextStopped
	}
	if st.Signaled {
		return 'Z', spawn.CrashText("qmail-remote", out)
	}
	switch st.Code {
	case 0:
	case goCrash:
		// The Go runtime's fatal errors (out of threads, memory) exit 2
		// where a C program dies by a signal: a crash, not a refusal.
		return 'Z', spawn.CrashText("qmail-remote", out)
	case 111:
		return 'Z', TextNoRun
	default:
		return 'D', TextNoRun
	}
	if len(out) == 0 {
		return 'Z', TextNoOutput
	}
	rank := func(c byte) int { // K=1, Z=0, D or nothing=-1
		switch c {
		case 'K':
			return 1
		case 'Z':
			return 0
		}
		return -1
	}
	result := -1
	start := 0
	for k := 0; k < len(out); k++ {
		if out[k] != 0 {
			continue
		}
		c := out[start]
		if c == 'K' || c == 'Z' || c == 'D' {
			result = rank(c)
			break
		}
		start = k + 1
	}
	sent := result
	switch out[0] {
	case 's':
		sent = 0
	case 'h':
		sent = -1
	}
	letter := byte('D')
	switch sent {
	case 1:
		letter = 'K'
	case 0:
		letter = 'Z'
	}
	var text []byte
	if k := bytes.IndexByte(out[1:], 0); k >= 0 {
		k += 2 // index just after the first NUL at or after out[1]
		text = append(text, piece(out[1:])...)
		if result <= sent && k < len(out) {
			switch out[k] {
			case 'K', 'Z', 'D':
				text = append(text, piece(out[k+1:])...)
			}
		}
	}
	return letter, string(text)
}

// TcptoSize is the size of queue/lock/tcpto.
const TcptoSize = 1024

// warnings is where ClearTcpto says what it could not do: fd 2, which
// qmail-start copies into the log after "qmail-rspawn: ".
var warnings io.Writer = os.Stderr

// ClearTcpto zero-fills ../lock/tcpto (relative to queue/mess), as
// qmail-rspawn does at start: timeouts seen before this start say nothing
// now. It never fails the start, as in qmail: a missing file is left
// missing without a word, and any other failure is one warning line on
// fd 2. The file is opened as pkg/tcpto's Table.Clear opens it
// (qhome.OpenQueueFile, in queue/lock, which qmailq can write): a FIFO
// there is not waited on (a plain open for writing would block until a
// reader came, and qmail-rspawn, so all remote delivery, with it), and a
// symbolic link, a second hard link or anything but a regular file is
// refused, never written.
func ClearTcpto() error {
	f, err := qhome.OpenQueueFile("../lock/tcpto", os.O_WRONLY)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err == nil {
		_, err = f.Write(make([]byte, TcptoSize))
		f.Close()
	}
	if err != nil {
		fmt.Fprintf(warnings, "warning: unable to clear %s: %v\n", tcpto.Path, qerr.Bare(err))
	}
	return nil
}

// Main is qmail-rspawn.
func Main(root string) int {
	owner := os.Getuid()
	ids, err := qhome.LoadIDs(root)
	switch {
	case err == nil:
		owner = ids.Qmailq.UID
	case os.Geteuid() == 0:
		return 111
	}
	return spawn.Main(root, New(root), spawn.Config{Owner: owner, Limit: spawn.RemoteLimit}, ClearTcpto)
}
