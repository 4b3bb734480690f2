package hold

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hqmail/hqmail/pkg/qhome"
)

// LinkWantFile is where the network hooks (scripts/ppp, networkmanager,
// networkd-dispatcher) record the state the last link event wants, "hold"
// or "release", before they apply it.
const LinkWantFile = "queue/lock/linkwant"

// WriteLinkWant records, as the network hooks do (through qmailctl
// linkwant), the state the last link event wants ("hold" or "release").
// queue/lock is qmailq's and the writers run as root, so the word goes
// through qhome.ReplaceFileShared: a temporary file of its own made
// O_EXCL, renamed; no link below queue/ is followed. A reader sees the
// old word or the new one, and of writers racing the last rename wins.
func WriteLinkWant(root, want string) error {
	return qhome.ReplaceFileShared(filepath.Join(root, LinkWantFile), []byte(want+"\n"), 0o644)
}

// bootTime returns when the machine booted; a variable so that tests can
// move it.
var bootTime = procBootTime

// ReleasedSinceBoot reports whether a network hook asked for remote
// delivery to be released after the machine booted: LinkWantFile says
// "release" and was written since the boot. The boot hold (qmailctl boot,
// control/startheld) then holds nothing: the link came up before qmail
// started, or qmail is restarted while online, and no later link event
// would release it. A file from an earlier boot, or an unknown boot time,
// counts as no release (the safe side). It trusts the clock: a clock
// stepped back by more than the uptime could make an earlier boot's
// release look recent.
func ReleasedSinceBoot(root string) bool {
	f, err := qhome.OpenQueueFile(filepath.Join(root, LinkWantFile), os.O_RDONLY)
	if err != nil {
		return false
	}
	defer f.Close()
	b, err := qhome.ReadCapped(f)
	if err != nil || strings.TrimSpace(string(b)) != "release" {
		return false
	}
	st, err := f.Stat()
	if err != nil {
		return false
	}
	boot, ok := bootTime()
	return ok && !st.ModTime().Before(boot)
}

// procBootTime reads the boot time from /proc/stat's btime line.
func procBootTime() (time.Time, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}, false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "btime "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return time.Time{}, false
			}
			return time.Unix(n, 0), true
		}
	}
	return time.Time{}, false
}
