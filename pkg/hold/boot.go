package hold

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/unixid"
	"golang.org/x/sys/unix"
)

// LinkWantFile is where the network hooks (scripts/ppp, networkmanager,
// networkd-dispatcher) and qmail-linkwatch record the state the last link
// event wants, "hold" or "release", before they apply it (qmailctl
// linkwant). It is in control/, root's (the tree owner's in a tree of an
// ordinary user), beside the hold flag it decides (control/holdremote),
// and written by the same writer, qmailctl.
const LinkWantFile = "control/linkwant"

// LinkWantBootFile is written beside LinkWantFile each time a word is
// recorded there, after it: the kernel's boot id
// (/proc/sys/kernel/random/boot_id) at that moment, one line. It tells
// ReleasedSinceBoot in which boot linkwant was written without asking
// the clock.
const LinkWantBootFile = "control/linkwant.boot"

// OldLinkWantFile and OldLinkWantBootFile are where qmailctl recorded
// them before: queue/lock, qmailq's directory, where qmailq could rename
// root's files, save a release of this boot and put it back after the
// next ip-down's hold (QA rtoday6). They are never read: an upgraded tree
// counts as one where no link event is recorded (the boot hold holds)
// until the next one, or a qmailctl linkwant release run by hand.
// qmail-install says so while they are there and LinkWantFile is not,
// or is older than OldLinkWantFile (an older release, gone back to,
// recorded a later event there).
const (
	OldLinkWantFile     = "queue/lock/linkwant"
	OldLinkWantBootFile = "queue/lock/linkwant.boot"
)

// WriteLinkWant records, as the network hooks do (through qmailctl
// linkwant), the state the last link event wants ("hold" or "release"),
// then the current boot id in LinkWantBootFile (nothing when the kernel
// gives none). Each file is written as qmailctl writes the hold flags,
// with qhome.ReplaceFile: a temporary file NAME.tmp made anew (a link
// there is removed, never written through), flushed, renamed over NAME,
// the directory flushed; a link at NAME is replaced, not followed. A
// reader sees the old word or the new one. The caller holds the control
// directory's lock (qmailctl's lockDir), as every writer of the hold
// flags does: ReplaceFile takes one writer at a time. The boot id is
// written only once linkwant is in place, so one naming the current boot
// says that linkwant was written in this boot too, whatever came between
// (a writer that died between the two).
func WriteLinkWant(root, want string) error {
	if err := qhome.ReplaceFile(filepath.Join(root, LinkWantFile), []byte(want+"\n"), 0o644, nil); err != nil {
		return err
	}
	id, ok := procBootID()
	if !ok {
		return nil
	}
	return qhome.ReplaceFile(filepath.Join(root, LinkWantBootFile), []byte(id+"\n"), 0o644, nil)
}

// OpenLinkWant opens the file rel (LinkWantFile or LinkWantBootFile) of
// the tree at root for reading without following a link at its name (a
// regular file, as qhome.OpenQueueFile opens it), and refuses one that
// belongs neither to root, nor to the tree's owner (the owner of root
// itself: root's in a tree installed by root, the user's in an ordinary
// user's tree), nor to this process's user. They are written by qmailctl
// linkwant (WriteLinkWant) as its user: root's hooks, or the user's in
// their own tree. control/ is root's, so the owner is checked only in
// depth: when linkwant was in queue/lock, qmailq's, a release in a file of
// qmailq's own released remote delivery at boot and undid an ip-down
// hold (QA rsec2). A refused file is a *ForeignLinkWantError.
func OpenLinkWant(root, rel string) (*os.File, error) {
	name := filepath.Join(root, rel)
	f, err := qhome.OpenQueueFile(name, os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, err
	}
	uid := int(st.Uid)
	if uid == 0 || uid == os.Geteuid() {
		return f, nil
	}
	var rst unix.Stat_t
	if unix.Stat(root, &rst) == nil && int(rst.Uid) == uid {
		return f, nil
	}
	f.Close()
	return nil, &ForeignLinkWantError{Name: rel, UID: uid}
}

// ForeignLinkWantError is OpenLinkWant's refusal of a file of another
// user (UID): qmailctl linkwant, run by root or the tree's owner, did
// not write it.
type ForeignLinkWantError struct {
	Name string // LinkWantFile or LinkWantBootFile
	UID  int
}

func (e *ForeignLinkWantError) Error() string {
	return fmt.Sprintf("%s belongs to %s, neither root nor the tree's owner: qmailctl linkwant did not write it, and its word is not taken; remove it", e.Name, unixid.Who(e.UID))
}

// ReadLinkWant returns the contents of the file rel of the tree at root
// (LinkWantFile or LinkWantBootFile), opened with OpenLinkWant, at most
// qhome.ReadCapped's limit.
func ReadLinkWant(root, rel string) ([]byte, error) {
	f, err := OpenLinkWant(root, rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return qhome.ReadCapped(f)
}

// LinkWantRefused returns the *ForeignLinkWantError of the first of
// LinkWantFile and LinkWantBootFile that exists and is refused for its
// owner (OpenLinkWant), nil when there is none: the boot hold says so,
// since a release recorded there is not taken.
func LinkWantRefused(root string) error {
	for _, rel := range []string{LinkWantFile, LinkWantBootFile} {
		f, err := OpenLinkWant(root, rel)
		if f != nil {
			f.Close()
		}
		var fe *ForeignLinkWantError
		if errors.As(err, &fe) {
			return err
		}
	}
	return nil
}

// bootTime returns when the machine booted; a variable so that tests can
// move it.
var bootTime = procBootTime

// bootIDFile is where the kernel gives the id of the current boot, a new
// random one at each boot; a variable so that tests can change it.
var bootIDFile = "/proc/sys/kernel/random/boot_id"

// ReleasedSinceBoot reports whether a network hook asked for remote
// delivery to be released after the machine booted: LinkWantFile says
// "release" and was written in this boot. The boot hold (qmailctl boot,
// control/startheld) then holds nothing: the link came up before qmail
// started, or qmail is restarted while online, and no later link event
// would release it. A file from an earlier boot counts as no release (the
// safe side).
//
// The boot is told by the boot id recorded in LinkWantBootFile, not by
// the clock: a host without a clock of its own (a Raspberry Pi, a router)
// brings its link up before NTP steps the clock forward, and btime, the
// wall time less the uptime, moves with the step past the release's
// mtime. A boot id naming this boot is a release of this boot; another
// one is a release of an earlier boot, unless linkwant is newer than it
// (written without it: its writer died between the two, or the kernel
// gave no boot id then). Then, and when there is no boot id recorded or
// the kernel gives none now, linkwant's mtime is compared with btime, which trusts the clock:
// unknown, it counts as no release; stepped forward after the release,
// as above, it holds; stepped back by more than the uptime, it could make
// an earlier boot's release look recent. A LinkWantBootFile of another
// user's (OpenLinkWant refuses it) makes it no release, as a refused
// LinkWantFile does: qmailctl linkwant did not write it.
func ReleasedSinceBoot(root string) bool {
	f, err := OpenLinkWant(root, LinkWantFile)
	if err != nil {
		return false
	}
	var fe *ForeignLinkWantError
	if bf, err := OpenLinkWant(root, LinkWantBootFile); errors.As(err, &fe) {
		f.Close()
		return false
	} else if bf != nil {
		bf.Close()
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
	if rec, recTime, ok := recordedBootID(root); ok {
		if cur, ok := procBootID(); ok {
			if rec == cur {
				return true
			}
			if !st.ModTime().After(recTime) {
				return false
			}
		}
	}
	boot, ok := bootTime()
	return ok && !st.ModTime().Before(boot)
}

// recordedBootID returns the boot id in LinkWantBootFile and the file's
// mtime; false when it is missing, unreadable (a link, not a regular
// file) or says no boot id.
func recordedBootID(root string) (string, time.Time, bool) {
	f, err := OpenLinkWant(root, LinkWantBootFile)
	if err != nil {
		return "", time.Time{}, false
	}
	defer f.Close()
	b, err := qhome.ReadCapped(f)
	if err != nil {
		return "", time.Time{}, false
	}
	st, err := f.Stat()
	if err != nil {
		return "", time.Time{}, false
	}
	id, ok := parseBootID(b)
	return id, st.ModTime(), ok
}

// procBootID reads the current boot id from bootIDFile.
func procBootID() (string, bool) {
	b, err := os.ReadFile(bootIDFile)
	if err != nil {
		return "", false
	}
	return parseBootID(b)
}

// parseBootID returns the boot id in b, one line: a UUID as the kernel
// writes it (any run of up to 64 hexadecimal digits and dashes is taken).
func parseBootID(b []byte) (string, bool) {
	id := strings.TrimSpace(string(b))
	if id == "" || len(id) > 64 {
		return "", false
	}
	for _, c := range []byte(id) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' || c == '-') {
			return "", false
		}
	}
	return id, true
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

// LinkWantStamp tells what LinkWantFile and LinkWantBootFile were when
// read: their words and the files themselves (inode, size, times). Two
// stamps of one tree differ when a word was recorded between them, even
// the same word again (each write renames a new file into place), so the
// boot hold can tell a release recorded while it held from the one it
// looked at before (qmailctl boot, control/startheld).
type LinkWantStamp struct{ want, boot fileStamp }

// fileStamp is one file of a LinkWantStamp; all zero when the file could
// not be opened (absent, a link).
type fileStamp struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64 // nanoseconds
	content      string
}

// ReadLinkWantStamp returns the stamp of the tree at root now.
func ReadLinkWantStamp(root string) LinkWantStamp {
	return LinkWantStamp{
		want: readFileStamp(filepath.Join(root, LinkWantFile)),
		boot: readFileStamp(filepath.Join(root, LinkWantBootFile)),
	}
}

func readFileStamp(name string) fileStamp {
	f, err := qhome.OpenQueueFile(name, os.O_RDONLY)
	if err != nil {
		return fileStamp{}
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fileStamp{}
	}
	b, _ := qhome.ReadCapped(f)
	return fileStamp{
		dev: uint64(st.Dev), ino: uint64(st.Ino), size: st.Size,
		mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano(),
		content: string(b),
	}
}
