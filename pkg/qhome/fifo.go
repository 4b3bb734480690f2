package qhome

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// ErrNotFIFO is the error of OpenQueueFIFO for a name that is not a FIFO.
var ErrNotFIFO = errors.New("not a FIFO")

// OpenQueueFIFO opens a FIFO of the queue (queue/lock/sendctl,
// queue/lock/trigger) for a program that may run as root: the directory
// is reached as for OpenQueueFile (nothing below the queue directory
// followed: queue/lock replaced with a symbolic link is refused, an error
// wrapping ErrSymlink that names it), and the FIFO is opened relative to
// it with O_NOFOLLOW and O_NONBLOCK (the descriptor stays non-blocking).
// Opened for writing with no reader it fails with an error wrapping
// ENXIO, which a caller may retry: each call walks the path again. A
// missing name wraps fs.ErrNotExist; anything but a FIFO there is closed
// and refused (ErrNotFIFO).
func OpenQueueFIFO(name string, flag int) (*os.File, error) {
	d, base, err := openParent(name)
	if err != nil {
		return nil, err
	}
	defer unix.Close(d)
	fd, err := openat(d, base, flag|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, symlinkError(&os.PathError{Op: "open", Path: name, Err: err})
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "stat", Path: name, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFIFO {
		unix.Close(fd)
		return nil, &os.PathError{Op: "open", Path: name, Err: ErrNotFIFO}
	}
	return os.NewFile(uintptr(fd), name), nil
}
