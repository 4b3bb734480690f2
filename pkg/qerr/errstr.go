package qerr

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// errTexts are the short errno descriptions qmail prints in its reports
// ("Unable to open .qmail: access denied. (#4.3.0)"). They differ from the C
// library's strerror texts, and scripts and log analysers match on them, so
// reports that show an errno use these words.
var errTexts = map[syscall.Errno]string{
	syscall.EINTR:           "interrupted system call",
	syscall.ENOMEM:          "out of memory",
	syscall.ENOENT:          "file does not exist",
	syscall.ETXTBSY:         "text busy",
	syscall.EIO:             "input/output error",
	syscall.EEXIST:          "file already exists",
	syscall.ETIMEDOUT:       "timed out",
	syscall.EINPROGRESS:     "operation in progress",
	syscall.EAGAIN:          "temporary failure",
	syscall.EPIPE:           "broken pipe",
	syscall.EPERM:           "permission denied",
	syscall.EACCES:          "access denied",
	syscall.ENXIO:           "device not configured",
	syscall.E2BIG:           "argument list too long",
	syscall.ENOEXEC:         "exec format error",
	syscall.EBADF:           "file descriptor not open",
	syscall.ECHILD:          "no child processes",
	syscall.EDEADLK:         "operation would cause deadlock",
	syscall.EFAULT:          "bad address",
	syscall.ENOTBLK:         "not a block device",
	syscall.EBUSY:           "device busy",
	syscall.EXDEV:           "cross-device link",
	syscall.ENODEV:          "device does not support operation",
	syscall.ENOTDIR:         "not a directory",
	syscall.EISDIR:          "is a directory",
	syscall.EINVAL:          "invalid argument",
	syscall.ENFILE:          "system cannot open more files",
	syscall.EMFILE:          "process cannot open more files",
	syscall.ENOTTY:          "not a tty",
	syscall.EFBIG:           "file too big",
	syscall.ENOSPC:          "out of disk space",
	syscall.ESPIPE:          "unseekable descriptor",
	syscall.EROFS:           "read-only file system",
	syscall.EMLINK:          "too many links",
	syscall.EDOM:            "input out of range",
	syscall.ERANGE:          "output out of range",
	syscall.EALREADY:        "operation already in progress",
	syscall.ENOTSOCK:        "not a socket",
	syscall.EDESTADDRREQ:    "destination address required",
	syscall.EMSGSIZE:        "message too long",
	syscall.EPROTOTYPE:      "incorrect protocol type",
	syscall.ENOPROTOOPT:     "protocol not available",
	syscall.EPROTONOSUPPORT: "protocol not supported",
	syscall.ESOCKTNOSUPPORT: "socket type not supported",
	syscall.EOPNOTSUPP:      "operation not supported",
	syscall.EPFNOSUPPORT:    "protocol family not supported",
	syscall.EAFNOSUPPORT:    "address family not supported",
	syscall.EADDRINUSE:      "address already used",
	syscall.EADDRNOTAVAIL:   "address not available",
	syscall.ENETDOWN:        "network down",
	syscall.ENETUNREACH:     "network unreachable",
	syscall.ENETRESET:       "network reset",
	syscall.ECONNABORTED:    "connection aborted",
	syscall.ECONNRESET:      "connection reset",
	syscall.ENOBUFS:         "out of buffer space",
	syscall.EISCONN:         "already connected",
	syscall.ENOTCONN:        "not connected",
	syscall.ESHUTDOWN:       "socket shut down",
	syscall.ETOOMANYREFS:    "too many references",
	syscall.ECONNREFUSED:    "connection refused",
	syscall.ELOOP:           "symbolic link loop",
	syscall.ENAMETOOLONG:    "file name too long",
	syscall.EHOSTDOWN:       "host down",
	syscall.EHOSTUNREACH:    "host unreachable",
	syscall.ENOTEMPTY:       "directory not empty",
	syscall.EUSERS:          "too many users",
	syscall.EDQUOT:          "disk quota exceeded",
	syscall.ESTALE:          "stale NFS file handle",
	syscall.EREMOTE:         "too many levels of remote in path",
	syscall.ENOLCK:          "no locks available",
	syscall.ENOSYS:          "system call not available",
	syscall.ENOMSG:          "no message of desired type",
	syscall.EIDRM:           "identifier removed",
	syscall.ENOSTR:          "not a stream device",
	syscall.ETIME:           "timer expired",
	syscall.ENOSR:           "out of stream resources",
	syscall.ENOLINK:         "link severed",
	syscall.EPROTO:          "protocol error",
	syscall.EBADMSG:         "bad message",
	syscall.EMULTIHOP:       "multihop attempted",
	syscall.ECOMM:           "communication error",
}

// Str returns qmail's text for the errno inside err ("file does not
// exist", "access denied", ...), "no error" for nil and "unknown error"
// when err carries no errno qmail names.
func Str(err error) string {
	if err == nil {
		return "no error"
	}
	var en syscall.Errno
	if !errors.As(err, &en) {
		return "unknown error"
	}
	if en == 0 {
		return "no error"
	}
	if s, ok := errTexts[en]; ok {
		return s
	}
	return "unknown error"
}

// TempErrno reports whether err carries an errno that qmail treats as a
// passing condition (its error_temp): out of memory or file slots, I/O
// errors, timeouts, full disks or quotas, network and NFS trouble.
// Errors without an errno are not temporary by this test.
func TempErrno(err error) bool {
	var en syscall.Errno
	if !errors.As(err, &en) {
		return false
	}
	switch en {
	case syscall.EINTR, syscall.ENOMEM, syscall.ETXTBSY, syscall.EIO,
		syscall.ETIMEDOUT, syscall.EAGAIN, syscall.EDEADLK, syscall.EBUSY,
		syscall.ENFILE, syscall.EMFILE, syscall.EFBIG, syscall.ENOSPC,
		syscall.ENETDOWN, syscall.ENETUNREACH, syscall.ENETRESET,
		syscall.ECONNABORTED, syscall.ECONNRESET, syscall.ENOBUFS,
		syscall.ETOOMANYREFS, syscall.ECONNREFUSED, syscall.EHOSTDOWN,
		syscall.EHOSTUNREACH, syscall.EUSERS, syscall.EDQUOT,
		syscall.ESTALE, syscall.EREMOTE, syscall.ENOLCK, syscall.ECOMM,
		syscall.ENOSR, syscall.ETIME, syscall.ENOLINK, syscall.EPROTO:
		return true
	}
	return false
}

// Bare returns the error inside a path or system-call error, so that a
// message that names the file itself does not name it twice ("unable to
// open X: no such file or directory", not "unable to open X: open X: no
// such file or directory"). Other errors are returned as they are.
func Bare(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err
	}
	return err
}
