package ctl

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/hqmail/hqmail/pkg/hold"
	"github.com/hqmail/hqmail/pkg/qhome"
)

// linkWant is "qmailctl linkwant [hold|release]": the network hooks
// record the state the last link event wants in queue/lock/linkwant
// (hold.LinkWantFile), and their background job reads it back, through
// qmailctl. queue/lock belongs to qmailq and the hooks run as root: a
// shell's "echo >file" or "cat file" there would follow a link planted in
// its place (qmailq could pre-plant linkwant.PID for the pids to come).
// The word is written with hold.WriteLinkWant (a temporary file of this
// writer's own made O_EXCL, renamed; no link below queue/ followed) and read with
// qhome.ReadQueueFile (no link, a regular file); only "hold" or "release"
// is ever printed.
func (c *cmd) linkWant(args []string) int {
	p := filepath.Join(c.root, hold.LinkWantFile)
	switch {
	case len(args) == 1 && (args[0] == "hold" || args[0] == "release"):
		if err := hold.WriteLinkWant(c.root, args[0]); err != nil {
			return c.fail(ExitTemp, "unable to write %s: %v", hold.LinkWantFile, err)
		}
		return ExitOK
	case len(args) == 0:
		b, err := qhome.ReadQueueFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			return c.fail(ExitTemp, "%s does not exist: no link event recorded", hold.LinkWantFile)
		}
		if err != nil {
			return c.fail(ExitTemp, "unable to read %s: %v", hold.LinkWantFile, err)
		}
		w := string(bytes.TrimSpace(b))
		if w != "hold" && w != "release" {
			return c.fail(ExitTemp, "%s says neither hold nor release", hold.LinkWantFile)
		}
		fmt.Fprintln(c.out, w)
		return ExitOK
	}
	return c.fail(ExitUsage, "usage: qmailctl linkwant [hold|release]")
}
