package local

import (
	"errors"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/qerr"
)

// Session keyrings (qmail-local(8), SECURITY). A process inherits the
// session keyring of its parent, and qmail-lspawn's is that of whoever
// started qmail-start: root's login session when root started it by hand,
// so that a .qmail program could read root's keys and every user's
// program shared one keyring with every other user's. Each delivery
// therefore joins a new, anonymous session keyring of its own before it
// runs anything of the user's.
//
// Credentials, the session keyring among them, belong to a thread in
// Linux, not to the process: keyctl(KEYCTL_JOIN_SESSION_KEYRING) changes
// only the calling thread, and a child gets the keyring of the thread that
// forked it. A Go program moves goroutines between threads, so a delivery
// runs on a goroutine locked to a thread of its own (runDelivery), which
// joins the new keyring first and forks every program (and qmail-queue)
// of the delivery; the goroutine ends without unlocking, and the runtime
// discards the thread with it. In keep mode every delivery gets a new
// keyring, as it gets a new environment.

// joinSession makes the calling thread's session keyring a new anonymous
// one. The name is NULL (KeyctlInt passes 0): x/sys's
// KeyctlJoinSessionKeyring("") passes an empty string, which the kernel
// takes as a name and would join an existing keyring called "" that the
// caller may search. No keyring support (ENOSYS) and keyctl refused by a
// seccomp filter (EPERM, EACCES; Docker's default profile), which the
// programs inherit, leave nothing to share: nil. Anything else (EDQUOT,
// ENOMEM) is a temporary failure of the delivery.
func joinSession() *exit {
	_, err := unix.KeyctlInt(unix.KEYCTL_JOIN_SESSION_KEYRING, 0, 0, 0, 0)
	return keyringFailure(err)
}

// keyringFailure is what an error of joinSession means for the delivery.
func keyringFailure(err error) *exit {
	if err == nil || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return nil
	}
	return temp("Unable to create a session keyring: %s. (#4.3.0)", qerr.Str(err))
}

// runDelivery runs f on a goroutine locked to an OS thread of its own that
// has joined a new session keyring, and returns its result. The thread is
// never given back: the runtime ends it with the goroutine.
func runDelivery(f func() *exit) *exit {
	done := make(chan *exit, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: see above
		if err := joinSession(); err != nil {
			done <- err
			return
		}
		done <- f()
	}()
	return <-done
}
