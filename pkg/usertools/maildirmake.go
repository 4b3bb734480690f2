package usertools

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/qerr"
)

const maildirmakeUsage = "maildirmake [--] dir"

// maildirSubs are made in this order: tmp first, so that a delivery that
// finds new/ also finds tmp/.
var maildirSubs = []string{"tmp", "new", "cur"}

// mkdirat is unix.Mkdirat; a variable so that tests can make a step fail.
var mkdirat = unix.Mkdirat

// fchmodEmpty sets the mode of what fd (open with O_PATH) is, by
// fchmodat2 with AT_EMPTY_PATH (Linux 6.6); a variable so that tests can
// take the ways older kernels go.
var fchmodEmpty = func(fd int, mode uint32) error { return unix.Fchmodat(fd, "", mode, unix.AT_EMPTY_PATH) }

// procFD is where /proc shows the process's own descriptors; a variable
// so that tests can take it away, as a system without /proc does.
var procFD = "/proc/self/fd/"

// chmodPath sets the mode of the directory open as fd with O_PATH, which
// fchmod(2) refuses; dir is its name. Each way acts on the directory fd is
// open on, never on whatever the name leads to now: fchmodat2 on the
// descriptor itself; else (an older kernel) chmod of /proc/self/fd/N,
// which leads to that very directory; else (no /proc either) fchmod of a
// descriptor that reads the directory, opened by its name and checked to
// be the same one, which opens only when the mode the umask left lets its
// owner read it.
func chmodPath(fd int, dir string, mode uint32) error {
	if fchmodEmpty(fd, mode) == nil {
		return nil
	}
	err := unix.Chmod(procFD+strconv.Itoa(fd), mode)
	if err != unix.ENOENT {
		return err
	}
	rfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(rfd)
	var made, opened unix.Stat_t
	if err := unix.Fstat(fd, &made); err != nil {
		return err
	}
	if err := unix.Fstat(rfd, &opened); err != nil {
		return err
	}
	if made.Dev != opened.Dev || made.Ino != opened.Ino {
		return errReplaced
	}
	return unix.Fchmod(rfd, mode)
}

// errReplaced is chmodPath's error for a directory replaced by another
// one between its making and its chmod.
var errReplaced = errors.New("replaced by another directory meanwhile")

// MaildirmakeMain is maildirmake(1): make the Maildir args[0]. It exits 0,
// 111 when the directory exists or cannot be made, 100 for a usage error.
func MaildirmakeMain(args []string, stderr io.Writer) int {
	if len(args) == 2 && args[0] == "--" {
		args = args[1:]
	} else if len(args) == 1 && strings.HasPrefix(args[0], "-") {
		return usageError(stderr, maildirmakeUsage)
	}
	if len(args) != 1 || args[0] == "" {
		return usageError(stderr, maildirmakeUsage)
	}
	if err := MakeMaildir(args[0]); err != nil {
		return fail(stderr, "maildirmake", exitTemp, "%s", errText(err))
	}
	return exitNext
}

// MakeMaildir creates dir and in it tmp, new and cur, each with mode 0700
// whatever the umask. It never uses an existing dir (that is an error,
// and the directory is left as it was). When a later step fails, the
// directories it made are removed again, as long as they are still empty,
// so that the same command can be run once the cause is fixed.
func MakeMaildir(dir string) error {
	if err := unix.Mkdir(dir, 0o700); err != nil {
		return qerr.Wrap(err, false, fmt.Sprintf("unable to make %s: %s", dir, qerr.Str(err)))
	}
	// From here on work inside the directory just made, never through
	// its name again (it is not followed if replaced by a link; only
	// chmodPath's last resort opens it by name, and checks it got the
	// same directory). O_PATH: the directory is opened whatever mode the
	// umask left it (one that takes the owner's read bit, 0400, would
	// make a read open fail for all but root); such a descriptor serves
	// the *at calls below, and chmodPath sets its mode.
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Rmdir(dir)
		return qerr.Wrap(err, false, fmt.Sprintf("unable to open %s: %s", dir, qerr.Str(err)))
	}
	defer unix.Close(fd)
	var made []string
	undo := func() {
		for i := len(made) - 1; i >= 0; i-- {
			unix.Unlinkat(fd, made[i], unix.AT_REMOVEDIR)
		}
		unix.Rmdir(dir)
	}
	if err := chmodPath(fd, dir, 0o700); err != nil {
		undo()
		return qerr.Wrap(err, false, fmt.Sprintf("unable to set the mode of %s: %s", dir, qerr.Str(err)))
	}
	for _, sub := range maildirSubs {
		path := filepath.Join(dir, sub)
		if err := mkdirat(fd, sub, 0o700); err != nil {
			undo()
			return qerr.Wrap(err, false, fmt.Sprintf("unable to make %s: %s", path, qerr.Str(err)))
		}
		made = append(made, sub)
		if err := unix.Fchmodat(fd, sub, 0o700, 0); err != nil {
			undo()
			return qerr.Wrap(err, false, fmt.Sprintf("unable to set the mode of %s: %s", path, qerr.Str(err)))
		}
	}
	return nil
}
