// Package lspawn is the local half of qmail-lspawn (spec/delivery.md §2):
// per request it finds the user that receives the mail (users/cdb, else
// qmail-getpw run as qmailp/nofiles) and runs qmail-local as that user,
// never as root. It turns qmail-local's exit status and output into a
// report with qmail's exit-code table.
//
// qmail forks a child of qmail-lspawn that looks the user up and execs
// qmail-local; a Go process cannot fork without exec, so the lookup runs
// inside qmail-lspawn (one goroutine per delivery) and its failures are
// reported with the exit codes qmail's child would have used (112-121, 126).
//
// Keep mode (NewKeep, control/localcache): qmail-local and qmail-getpw are
// kept alive between deliveries (package keep), one qmail-local per uid and
// gid, so that a run of mail to one user costs no program start per
// message; the answers are those of one-shot runs.
package lspawn

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hqmail/hqmail/pkg/address"
	"github.com/hqmail/hqmail/pkg/cdb"
	"github.com/hqmail/hqmail/pkg/control"
	"github.com/hqmail/hqmail/pkg/getpw"
	"github.com/hqmail/hqmail/pkg/local"
	"github.com/hqmail/hqmail/pkg/pollfd"
	"github.com/hqmail/hqmail/pkg/privsep"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/spawn"
	"github.com/hqmail/hqmail/pkg/spawn/keep"
	"github.com/hqmail/hqmail/pkg/unixid"
)

// Exit codes of qmail-lspawn's delivery child (qmail's qlx.h).
const (
	ExitUsage    = 112
	ExitRoot     = 113
	ExitNFS      = 115
	ExitNoAlias  = 116
	ExitCDB      = 117
	ExitSys      = 118
	ExitNoMem    = 119
	ExitExecSoft = 120
	ExitExecPW   = 121
	ExitExecHard = 126
)

// MaxGetpwOutput bounds what is read from qmail-getpw.
const MaxGetpwOutput = 16 << 10

// maxKeepLocal is the longest request a kept qmail-local reads (Deliver's
// local part shadows the package's name there).
const maxKeepLocal = local.MaxKeepRequest

// Local delivers through qmail-local.
type Local struct {
	Root            string
	DefaultDelivery string
	QmailLocal      string // path of qmail-local (ROOT/bin/qmail-local)
	Getpw           string // path of qmail-getpw (ROOT/bin/qmail-getpw)
	// GetpwCred runs qmail-getpw (qmailp/nofiles); nil runs it as us.
	GetpwCred *privsep.Cred
	// Switch is true when qmail-local runs as the recipient's uid (root,
	// tree not shared). Otherwise every delivery runs as us, and a user
	// whose uid is not ours gets a temporary failure.
	Switch bool
	// Self is our uid (used when Switch is false).
	Self int
	// Keep and KeepGetpw, when set, run deliveries and lookups through
	// kept qmail-local -k (one per user) and qmail-getpw -k processes
	// while control/localcache allows (see NewKeep).
	Keep, KeepGetpw *keep.Pool
}

// DefaultLocalCache is the default of control/localcache.
const DefaultLocalCache = 5 * time.Second

// localCache reads control/localcache (seconds; a bad or unreadable file
// means the default).
func (l *Local) localCache() time.Duration {
	n, err := control.Open(l.Root).ReadInt("localcache", int(DefaultLocalCache/time.Second))
	if err != nil || n < 0 {
		return DefaultLocalCache
	}
	return time.Duration(n) * time.Second
}

// NewKeep sets up keep mode (qmail-lspawn(8), KEEP MODE): a qmail-local
// that has delivered for a user stays alive, as that user, for the next
// delivery to the same user (uid and gid), and one qmail-getpw stays alive
// for the lookups, each for control/localcache seconds after its last use
// (default DefaultLocalCache; 0 is qmail's one process per delivery).
func (l *Local) NewKeep() {
	l.Keep = &keep.Pool{Program: l.QmailLocal, Hello: local.KeepHello, Cache: l.localCache,
		MaxReply: local.MaxKeepOutput + 1}
	l.KeepGetpw = &keep.Pool{Program: l.Getpw, Hello: getpw.KeepHello, Cache: l.localCache,
		MaxReply: MaxGetpwOutput + 1, MaxIdle: 1}
}

// New returns the Local of the tree at root.
func New(root, defaultDelivery string) *Local {
	return &Local{
		Root:            root,
		DefaultDelivery: defaultDelivery,
		QmailLocal:      filepath.Join(root, "bin", "qmail-local"),
		Getpw:           filepath.Join(root, "bin", "qmail-getpw"),
		Self:            os.Getuid(),
	}
}

// Fields are the six user fields of users/cdb and qmail-getpw.
type Fields struct {
	User      string
	UID, GID  int
	Home      string
	Dash, Ext string
}

// ParseFields parses "user\0uid\0gid\0home\0dash\0ext\0"; bytes after
// the sixth NUL are ignored. It fails (qmail's 112) only for fewer than
// six NULs or an id of 2^32-1 or more.
func ParseFields(b []byte) (*Fields, bool) {
	parts := bytes.SplitN(b, []byte{0}, 7)
	if len(parts) < 7 {
		return nil, false
	}
	// As qmail's scan_ulong: the leading decimal digits, the rest of the
	// field ignored ("1001 " and "1001x" are 1001), and a field without
	// them is 0 ("", "+1001", "-1", "abc"), which Deliver then refuses
	// as root (113). qmail-newu refuses such fields; qmail-getpw's come
	// from passwd. Linux ids are 32 bits wide and (uid_t)-1 means "no
	// change" to setresuid and is nobody's id: digits worth None or more
	// (ScanUlong saturates, so any count of them) are malformed (112),
	// not cut to 32 bits.
	num := func(s []byte) (int, bool) {
		n, _ := control.ScanUlong(string(s))
		if n >= unixid.None {
			return 0, false
		}
		return int(uint32(n)), true
	}
	uid, ok1 := num(parts[1])
	gid, ok2 := num(parts[2])
	if !ok1 || !ok2 {
		return nil, false
	}
	return &Fields{User: string(parts[0]), UID: uid, GID: gid, Home: string(parts[3]),
		Dash: string(parts[4]), Ext: string(parts[5])}, true
}

// ErrNoWildSet is a users/cdb without the "" record.
var ErrNoWildSet = errors.New("users/cdb has no wildcard-set record")

// Getter is a cdb lookup (cdb.Reader).
type Getter interface {
	Get(key []byte) ([]byte, bool, error)
}

// Lookup finds local in users/cdb: first the exact key "!"+lower(local)+
// "\0", then the wildcard keys "!"+lower(local[:i]) for i from len(local)
// down to 0, where i > 0 is tried only when lower(local[i-1]) is in the
// wildcard set (key ""). A wildcard hit appends local[i:] to ext. It
// returns the fields, NUL-separated and NUL-terminated. A cdb without the
// "" record is not one qmail-newu made: ErrNoWildSet, whatever the
// lookup would find (qmail-lspawn reads that record first).
func Lookup(db Getter, local string) ([]byte, bool, error) {
	wild, ok, err := db.Get(nil)
	if err != nil {
		return nil, false, err
	}
	if !ok {
		return nil, false, ErrNoWildSet
	}
	key := append([]byte{'!'}, address.LowerASCII(local)...)
	v, ok, err := db.Get(append(key[:len(key):len(key)], 0))
	if err != nil {
		return nil, false, err
	}
	if ok {
		return terminate(v), true, nil
	}
	for i := len(local); i >= 0; i-- {
		if i > 0 && bytes.IndexByte(wild, key[i]) < 0 {
			continue // key[i] is lower(local[i-1])
		}
		v, ok, err := db.Get(key[:1+i])
		if err != nil {
			return nil, false, err
		}
		if ok {
			f := open(v)
			f = append(f, local[i:]...)
			return append(f, 0), true, nil
		}
	}
	return nil, false, nil
}

// open returns a users/cdb value ending in its ext field, without a final
// NUL. qmail-newu stores the six fields with five separating NULs;
// a value with six NULs (each field terminated) is accepted too.
func open(v []byte) []byte {
	out := append([]byte(nil), v...)
	if bytes.Count(out, []byte{0}) >= 6 && out[len(out)-1] == 0 {
		out = out[:len(out)-1]
	}
	return out
}

func terminate(v []byte) []byte { return append(open(v), 0) }

// findUser returns the fields for local, or an exit code.
func (l *Local) findUser(d *spawn.Delivery, local string) ([]byte, int) {
	db, err := cdb.Open(filepath.Join(l.Root, "users", "cdb"))
	if err == nil {
		f, ok, err := Lookup(db.Reader, local)
		db.Close()
		if err != nil {
			return nil, ExitCDB
		}
		if ok {
			return f, 0
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, ExitCDB
	}
	return l.getpw(d, local)
}

// getpw runs qmail-getpw local as qmailp/nofiles.
func (l *Local) getpw(d *spawn.Delivery, local string) ([]byte, int) {
	// A request longer than a kept qmail-getpw reads is made one-shot
	// (addresses are far shorter: it does not happen).
	if req := keep.Join(local); l.KeepGetpw != nil && len(req) <= getpw.MaxKeepRequest {
		start := func() *exec.Cmd {
			cmd := exec.Command(l.Getpw, "-k")
			cmd.Args[0] = "qmail-getpw"
			privsep.Apply(cmd, l.GetpwCred)
			newSession(cmd)
			return cmd
		}
		reply, res := l.KeepGetpw.Do("getpw", start, req, -1)
		switch res {
		case keep.Answered:
			if reply[0] != 0 {
				return nil, int(reply[0])
			}
			return reply[1:], 0
		case keep.Crashed:
			return nil, ExitSys
		}
	}
	cmd := exec.Command(l.Getpw, local)
	cmd.Args[0] = "qmail-getpw"
	// No cmd.Dir: see Deliver.
	cmd.Stderr = d.Output
	privsep.Apply(cmd, l.GetpwCred)
	newSession(cmd)
	pr, err := cmd.StdoutPipe()
	if err != nil {
		return nil, ExitSys
	}
	if err := cmd.Start(); err != nil {
		return nil, ExitExecPW
	}
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := pr.Read(buf)
		if len(out)+n <= MaxGetpwOutput {
			out = append(out, buf[:n]...)
		}
		if err != nil {
			break
		}
	}
	pollfd.Wait(cmd)
	st := spawn.StatusOf(cmd.ProcessState)
	if st.Signaled || st.Code == goCrash {
		// A crashed qmail-getpw (exit 2 is the Go runtime's fatal error
		// or panic) is qmail's temporary failure, never taken for a
		// crashed qmail-local by Translate.
		return nil, ExitSys
	}
	if st.Code != 0 {
		return nil, st.Code
	}
	return out, 0
}

// Deliver implements spawn.Spawner.
func (l *Local) Deliver(d *spawn.Delivery) (spawn.Status, error) {
	local := d.Local()
	if local == "" {
		return spawn.Status{}, nil
	}
	raw, code := l.findUser(d, local)
	if code != 0 {
		return spawn.Status{Code: code}, nil
	}
	f, ok := ParseFields(raw)
	if !ok {
		return spawn.Status{Code: ExitUsage}, nil
	}
	if f.UID == 0 {
		return spawn.Status{Code: ExitRoot}, nil
	}
	args := []string{"--", f.User, f.Home, local, f.Dash, f.Ext, d.Domain(), d.Sender, l.DefaultDelivery}
	var cred *privsep.Cred
	if l.Switch {
		cred = privsep.Exactly(f.UID, f.GID) // never uid 0: refused above
	} else if f.UID != l.Self {
		return spawn.Status{Report: "ZUnable to deliver as uid " + unixid.Format(f.UID) +
			": qmail-lspawn runs without root and cannot switch users. (#4.3.0)\n"}, nil
	}
	// A request longer than a kept qmail-local reads (a long
	// control/defaultdelivery) is made one-shot: cut short, it would
	// fail.
	if req := keep.Join(args...); l.Keep != nil && len(req) <= maxKeepLocal {
		// One kept qmail-local per user: the key is the uid and gid it
		// runs as, so that a process only ever delivers for its own user.
		start := func() *exec.Cmd {
			cmd := exec.Command(l.QmailLocal, "-k")
			cmd.Args[0] = "qmail-local"
			privsep.Apply(cmd, cred)
			newSession(cmd)
			return cmd
		}
		key := unixid.Format(f.UID) + ":" + unixid.Format(f.GID)
		reply, res := l.Keep.Do(key, start, req, int(d.Message.Fd()))
		switch res {
		case keep.Answered:
			d.Output.Write(reply[1:])
			return spawn.Status{Code: int(reply[0])}, nil
		case keep.Crashed:
			// What the process wrote on its fd 2 goes into the output, as
			// a one-shot qmail-local's would: Translate finds the reason.
			d.Output.Write(reply)
			return spawn.Status{Signaled: true}, nil
		}
	}
	cmd := exec.Command(l.QmailLocal, args...)
	cmd.Args[0] = "qmail-local"
	// No cmd.Dir: the child keeps our working directory (queue/mess).
	// qmail changes to QMAILHOME as root before switching users; exec
	// changes directory after switching, where a QMAILHOME the user
	// cannot enter would turn into a failed exec (a bounce). qmail-local
	// changes to the home directory before anything else.
	cmd.Stdin = d.Message
	cmd.Stdout = d.Output
	cmd.Stderr = d.Output
	privsep.Apply(cmd, cred)
	newSession(cmd)
	if err := cmd.Start(); err != nil {
		return spawn.NotStarted("qmail-local", err), nil
	}
	pollfd.Wait(cmd)
	return spawn.StatusOf(cmd.ProcessState), nil
}

// newSession starts cmd in a session of its own (setsid between fork and
// exec): it has no controlling terminal, and neither has anything it runs.
// A process gets one only by opening a terminal as a session leader: its
// children are none (qmail-local forks them without setsid), and
// qmail-local, the leader, opens .qmail files with O_NOCTTY; any other
// terminal it could open (an mbox line naming one) is one its user may
// open anyway. qmail-lspawn shares the session of whoever started
// qmail-start, which is root's terminal when root starts it by hand from
// a shell: a .qmail program that could open /dev/tty there could push
// input into root's shell (TIOCSTI) or read what root types. Nothing
// signals a delivery by process group (qmail-send never kills one; a
// delivery ends by itself), so the group of its own costs nothing.
// Descriptors 0, 1 and 2 of qmail-local are the message and the report
// pipe (one-shot) or the keep socket and a pipe of the pool (kept), never
// a terminal; qmail-start and spawn.Main leave no other descriptor open
// across exec.
func newSession(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setsid = true
}

// Report implements spawn.Spawner.
func (l *Local) Report(st spawn.Status, output []byte) (byte, string) {
	return Translate(st, output)
}

var fixed = map[int]string{
	ExitUsage:    "ZInternal qmail-lspawn bug.\n",
	ExitRoot:     "ZNot allowed to perform deliveries as root.\n",
	ExitNFS:      "ZNFS failure in qmail-local.\n",
	ExitNoAlias:  "ZUnable to find alias user!\n",
	ExitCDB:      "ZTrouble reading users/cdb in qmail-lspawn.\n",
	ExitSys:      "ZTemporary failure in qmail-lspawn.\n",
	ExitNoMem:    "ZOut of memory in qmail-lspawn.\n",
	ExitExecSoft: "ZUnable to run qmail-local.\n",
	ExitExecPW:   "ZUnable to run qmail-getpw.\n",
	ExitExecHard: "DUnable to run qmail-local.\n",
}

// Translate maps qmail-local's (or the lookup's) exit status and output to
// a report: signal or exit 2 -> Z "qmail-local crashed.", or
// "qmail-local crashed (REASON)." when the output holds the Go runtime's
// reason (spawn.CrashText); the fixed codes 112-121 and 126 -> their
// texts; 0 -> K+output; 111, 71, 74, 75 -> Z+output; anything else ->
// D+output. output is used up to its first NUL (the reason is looked for
// in all of it).
func Translate(st spawn.Status, output []byte) (byte, string) {
	if st.Report != "" {
		return st.Report[0], st.Report[1:]
	}
	if st.Signaled || st.Code == goCrash {
		// Exit 2 is the Go runtime's fatal error or panic, where a C
		// qmail-local would die by a signal: a crash, never a bounce.
		return 'Z', spawn.CrashText("qmail-local", output)
	}
	if t, ok := fixed[st.Code]; ok {
		return t[0], t[1:]
	}
	if i := bytes.IndexByte(output, 0); i >= 0 {
		output = output[:i]
	}
	switch st.Code {
	case 0:
		return 'K', string(output)
	case 111, 71, 74, 75:
		return 'Z', string(output)
	}
	return 'D', string(output)
}

// goCrash is the exit status of a Go program that died of a runtime fatal
// error or an unrecovered panic.
const goCrash = 2

// Main is qmail-lspawn: args are the arguments after the program name.
func Main(args []string, root string) int {
	if len(args) < 1 {
		return 100
	}
	ids, err := qhome.LoadIDs(root)
	if err != nil {
		if os.Geteuid() == 0 {
			return 111 // a root tree without its ids: do not guess
		}
		ids = qhome.SharedIDs(os.Getuid(), os.Getgid())
	}
	l := New(root, args[0])
	l.Switch = privsep.CanSwitch(ids.Shared)
	if l.Switch {
		l.GetpwCred = privsep.Exactly(ids.Qmailp.UID, ids.Nofiles)
	}
	l.NewKeep()
	return spawn.Main(root, l, spawn.Config{Owner: ids.Qmailq.UID, Truncate: 3000}, nil)
}
