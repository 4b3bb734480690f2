// Package tcptofile is the place, size and zeroing of qmail-remote's
// connect-timeout table, queue/lock/tcpto: the part of package tcpto that
// knows no addresses. It imports no network code, so that a program that
// must carry none (qmail-start, root, whose boot hold shares qmailctl's
// code, which clears the table on a release) can clear it.
package tcptofile

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qhome"
)

// Path is the table's path relative to the qmail root.
const Path = "queue/lock/tcpto"

// Size of the file and of one record.
const (
	Records    = 64
	RecordSize = 16
	Size       = Records * RecordSize
)

// Clear zeroes the table at path (every host may be tried at once), under
// its exclusive lock. It is opened as a queue file
// (qhome.OpenQueueFile): a symbolic link (in its place or for queue/lock),
// a hard link or anything but a regular file is refused, never zeroed.
func Clear(path string) error {
	f, err := qhome.OpenQueueFile(path, os.O_WRONLY)
	if err != nil {
		return fmt.Errorf("unable to open %s: %w", Path, qerr.Bare(err))
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("unable to lock %s: %w", Path, err)
	}
	if _, err := f.WriteAt(make([]byte, Size), 0); err != nil {
		return fmt.Errorf("unable to clear %s: %w", Path, err)
	}
	return nil
}
