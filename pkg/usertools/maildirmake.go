package usertools

import (
	"fmt"
	"io"
	"path/filepath"
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
	// its name again (it is not followed if replaced by a link).
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
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
	if err := unix.Fchmod(fd, 0o700); err != nil {
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
