package install

import (
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/hqmail/hqmail/pkg/qhome"
)

// fakeUserDB replaces the user database IDConflicts reads by the given
// accounts (name -> uid, gid) and groups (name -> gid) for the test.
func fakeUserDB(t *testing.T, users map[string][2]int, groups map[string]int) {
	t.Helper()
	oldU, oldUID, oldG, oldGID := lookupUser, lookupUserID, lookupGroup, lookupGroupID
	t.Cleanup(func() { lookupUser, lookupUserID, lookupGroup, lookupGroupID = oldU, oldUID, oldG, oldGID })
	mk := func(n string, ids [2]int) *user.User {
		return &user.User{Username: n, Uid: strconv.Itoa(ids[0]), Gid: strconv.Itoa(ids[1])}
	}
	lookupUser = func(n string) (*user.User, error) {
		if ids, ok := users[n]; ok {
			return mk(n, ids), nil
		}
		return nil, user.UnknownUserError(n)
	}
	lookupUserID = func(id string) (*user.User, error) {
		for n, ids := range users {
			if strconv.Itoa(ids[0]) == id {
				return mk(n, ids), nil
			}
		}
		return nil, user.UnknownUserIdError(0)
	}
	lookupGroup = func(n string) (*user.Group, error) {
		if gid, ok := groups[n]; ok {
			return &user.Group{Name: n, Gid: strconv.Itoa(gid)}, nil
		}
		return nil, user.UnknownGroupError(n)
	}
	lookupGroupID = func(id string) (*user.Group, error) {
		for n, gid := range groups {
			if strconv.Itoa(gid) == id {
				return &user.Group{Name: n, Gid: id}, nil
			}
		}
		return nil, user.UnknownGroupIdError(id)
	}
}

// restoredIDs are the ids of QA's restored tree: qmails and qmailq have
// the uids postgres and postfix have on this machine.
func restoredIDs() *qhome.IDs {
	return &qhome.IDs{
		Alias:  qhome.User{UID: 998, GID: 994},
		Qmaild: qhome.User{UID: 995, GID: 994},
		Qmaill: qhome.User{UID: 994, GID: 994},
		Qmailp: qhome.User{UID: 993, GID: 994},
		Qmailq: qhome.User{UID: 103, GID: 995},
		Qmailr: qhome.User{UID: 997, GID: 995},
		Qmails: qhome.User{UID: 101, GID: 995},
		Qmail:  995, Nofiles: 994,
	}
}

// TestIDConflicts: a recorded uid the user database gives to another
// account, and a qmail name it gives another uid or gid, are named with
// what they mean; names and numbers it does not know, a shared tree and
// the names of a -uid-base tree are not.
func TestIDConflicts(t *testing.T) {
	const fix = "renumber the tree: qmail-install(8), Renumbering"
	qmailUsers := map[string][2]int{
		"alias": {998, 994}, "qmaild": {995, 994}, "qmaill": {994, 994}, "qmailp": {993, 994},
		"qmailq": {992, 995}, "qmailr": {997, 995}, "qmails": {999, 995},
	}
	others := map[string][2]int{"root": {0, 0}, "postgres": {101, 104}, "postfix": {103, 105}}
	all := map[string][2]int{}
	for _, m := range []map[string][2]int{qmailUsers, others} {
		for n, ids := range m {
			all[n] = ids
		}
	}
	groups := map[string]int{"root": 0, "qmail": 995, "nofiles": 994, "postgres": 104, "postfix": 105}

	fakeUserDB(t, all, groups)
	got := IDConflicts(restoredIDs())
	want := []string{
		"etc/ids: qmailq is uid 103, but the user database gives qmailq uid 992: the tree's programs run as uid 103, not as the account qmailq (" + fix + "; " + copiedByName + ")",
		"etc/ids: qmailq is uid 103, which the user database gives to postfix: qmail-queue, qmail-queued and qmail-clean run as postfix, " +
			"and postfix can read and change what qmailq owns, all queued mail (queue/mess) among it (give qmailq a uid of its own: " + fix + ")",
		"etc/ids: qmails is uid 101, but the user database gives qmails uid 999: the tree's programs run as uid 101, not as the account qmails (" + fix + "; " + copiedByName + ")",
		"etc/ids: qmails is uid 101, which the user database gives to postgres: qmail-send runs as postgres, " +
			"and postgres can read and change what qmails owns, the envelopes of queued mail (queue/info, local, remote) and the bounces among it (give qmails a uid of its own: " + fix + ")",
	}
	if !slices.Equal(got, want) {
		t.Errorf("restored tree:\n got %q\nwant %q", got, want)
	}

	// A name with another number that no account has: usermod can give
	// it the tree's. Groups likewise, and a group number of another group.
	ids := restoredIDs()
	ids.Qmailq.UID, ids.Qmails.UID = 992, 999
	ids.Qmailr.UID = 2001
	ids.Qmail, ids.Nofiles = 105, 2002
	ids.Qmailq.GID, ids.Qmailr.GID, ids.Qmails.GID = 105, 105, 105
	ids.Alias.GID, ids.Qmaild.GID, ids.Qmaill.GID, ids.Qmailp.GID = 2002, 2002, 2002, 2002
	got = IDConflicts(ids)
	want = []string{
		"etc/ids: alias has gid 2002, but the user database gives alias gid 994: the tree uses gid 2002 for alias, not the account's group (usermod -g 2002 alias, or " + fix + ")",
		"etc/ids: qmaild has gid 2002, but the user database gives qmaild gid 994: the tree uses gid 2002 for qmaild, not the account's group (usermod -g 2002 qmaild, or " + fix + ")",
		"etc/ids: qmaill has gid 2002, but the user database gives qmaill gid 994: the tree uses gid 2002 for qmaill, not the account's group (usermod -g 2002 qmaill, or " + fix + ")",
		"etc/ids: qmailp has gid 2002, but the user database gives qmailp gid 994: the tree uses gid 2002 for qmailp, not the account's group (usermod -g 2002 qmailp, or " + fix + ")",
		"etc/ids: qmailq has gid 105, but the user database gives qmailq gid 995: the tree uses gid 105 for qmailq, not the account's group (usermod -g 105 qmailq, or " + fix + ")",
		"etc/ids: qmailr is uid 2001, but the user database gives qmailr uid 997: the tree's programs run as uid 2001, not as the account qmailr (usermod -u 2001 qmailr, or " + fix + "; " + copiedByName + ")",
		"etc/ids: qmailr has gid 105, but the user database gives qmailr gid 995: the tree uses gid 105 for qmailr, not the account's group (usermod -g 105 qmailr, or " + fix + ")",
		"etc/ids: qmails has gid 105, but the user database gives qmails gid 995: the tree uses gid 105 for qmails, not the account's group (usermod -g 105 qmails, or " + fix + ")",
		"etc/ids: group qmail is gid 105, but the user database gives group qmail gid 995: the tree's programs run with gid 105, not as the group qmail (" + fix + "; " + copiedByName + ")",
		"etc/ids: group qmail is gid 105, which the user database gives to group postfix: qmail's daemons run with group postfix and can read and change its files, " +
			"and the members of postfix can read all queued mail (queue/mess is mode 0750, group qmail) (give group qmail a gid of its own: " + fix + ")",
		"etc/ids: group nofiles is gid 2002, but the user database gives group nofiles gid 994: the tree's programs run with gid 2002, not as the group nofiles (groupmod -g 2002 nofiles, or " + fix + "; " + copiedByName + ")",
	}
	if !slices.Equal(got, want) {
		t.Errorf("free numbers:\n got %q\nwant %q", got, want)
	}

	// A primary group of its own, the number of another group.
	ids = restoredIDs()
	ids.Qmailq.UID, ids.Qmails.UID = 992, 999
	ids.Alias.GID = 104
	qmailUsers["alias"] = [2]int{998, 104}
	all["alias"] = qmailUsers["alias"]
	got = IDConflicts(ids)
	want = []string{"etc/ids: alias has gid 104, which the user database gives to group postgres: what runs as alias can read and change the files of group postgres " +
		"(give alias the gid of group nofiles: " + fix + ")"}
	if !slices.Equal(got, want) {
		t.Errorf("primary group of another group:\n got %q\nwant %q", got, want)
	}
	all["alias"] = [2]int{998, 994}

	// The database agrees: nothing.
	ids = restoredIDs()
	ids.Qmailq.UID, ids.Qmails.UID = 992, 999
	if got := IDConflicts(ids); got != nil {
		t.Errorf("ids of the database: %q", got)
	}

	// Names and numbers the database does not know (a tree of numeric
	// ids on a machine without qmail's users): nothing.
	fakeUserDB(t, others, map[string]int{"root": 0, "postgres": 104, "postfix": 105})
	if got := IDConflicts(BaseIDs(64010)); got != nil {
		t.Errorf("numeric ids, no qmail names: %q", got)
	}
	ids = restoredIDs()
	ids.Qmailq.UID, ids.Qmails.UID = 992, 999
	if got := IDConflicts(ids); got != nil {
		t.Errorf("unknown names and numbers: %q", got)
	}

	// The names of a -uid-base tree are not compared (its numbers are
	// meant to have no entries), even where qmail's users exist; a
	// number of another account still is.
	fakeUserDB(t, all, groups)
	if got := IDConflicts(BaseIDs(64010)); got != nil {
		t.Errorf("-uid-base ids where qmail's names exist: %q", got)
	}
	got = IDConflicts(BaseIDs(98))
	// alias 98 ... qmails 104: qmailp's 101 (postgres) and qmailr's 103
	// (postfix) are taken; 104 is postgres' gid, no account's uid.
	want = []string{
		"etc/ids: qmailp is uid 101, which the user database gives to postgres: qmail-getpw runs as postgres, and each can signal and trace the other's processes (give qmailp a uid of its own: " + fix + ")",
		"etc/ids: qmailr is uid 103, which the user database gives to postfix: qmail-rspawn and qmail-remote run as postfix, and postfix can read and change what qmailr owns, queue/lock/tcpto among it (give qmailr a uid of its own: " + fix + ")",
	}
	if !slices.Equal(got, want) {
		t.Errorf("-uid-base 98:\n got %q\nwant %q", got, want)
	}

	// A shared tree: every name is its one user, by design.
	if got := IDConflicts(qhome.SharedIDs(101, 104)); got != nil {
		t.Errorf("shared tree: %q", got)
	}
}

// systemAccount returns the uid and gid of an account every Linux system
// has, or skips.
func systemAccount(t *testing.T, name string) (int, int) {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Skipf("no account %s in the user database: %v", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return uid, gid
}

// freeIDs returns n numbers from base up that the user database gives
// to no user and no group, or skips.
func freeIDs(t *testing.T, base, n int) []int {
	t.Helper()
	var out []int
	for id := base; id < base+1000 && len(out) < n; id++ {
		_, uerr := user.LookupId(strconv.Itoa(id))
		_, gerr := user.LookupGroupId(strconv.Itoa(id))
		if uerr != nil && gerr != nil {
			out = append(out, id)
		}
	}
	if len(out) < n {
		t.Skipf("no %d free ids from %d", n, base)
	}
	return out
}

// craftedIDs are ids of numbers no account has, except qmails with
// daemon's uid and qmailq with nobody's (a tree restored onto a machine
// that gives those numbers to other accounts).
func craftedIDs(t *testing.T) (*qhome.IDs, []string) {
	t.Helper()
	daemon, _ := systemAccount(t, "daemon")
	nobody, _ := systemAccount(t, "nobody")
	f := freeIDs(t, 64210, 7)
	ids := &qhome.IDs{
		Alias:  qhome.User{UID: f[2], GID: f[1]},
		Qmaild: qhome.User{UID: f[3], GID: f[1]},
		Qmaill: qhome.User{UID: f[4], GID: f[1]},
		Qmailp: qhome.User{UID: f[5], GID: f[1]},
		Qmailq: qhome.User{UID: nobody, GID: f[0]},
		Qmailr: qhome.User{UID: f[6], GID: f[0]},
		Qmails: qhome.User{UID: daemon, GID: f[0]},
		Qmail:  f[0], Nofiles: f[1],
	}
	fix := "renumber the tree: qmail-install(8), Renumbering"
	clashes := []string{
		"etc/ids: qmailq is uid " + strconv.Itoa(nobody) + ", which the user database gives to nobody: qmail-queue, qmail-queued and qmail-clean run as nobody, " +
			"and nobody can read and change what qmailq owns, all queued mail (queue/mess) among it (give qmailq a uid of its own: " + fix + ")",
		"etc/ids: qmails is uid " + strconv.Itoa(daemon) + ", which the user database gives to daemon: qmail-send runs as daemon, " +
			"and daemon can read and change what qmails owns, the envelopes of queued mail (queue/info, local, remote) and the bounces among it (give qmails a uid of its own: " + fix + ")",
	}
	return ids, clashes
}

// conflictLines returns the lines of dev about etc/ids and the user
// database. Lines naming one of qmail's names that the user database has
// (a machine with qmail's users: they then have other numbers than these
// test ids) are checked to be of those names, and dropped.
func conflictLines(t *testing.T, dev []string) []string {
	t.Helper()
	var out []string
	for _, l := range dev {
		if !strings.Contains(l, "the user database gives") {
			continue
		}
		if strings.Contains(l, ", but the user database gives ") {
			f := strings.Fields(strings.TrimPrefix(l, "etc/ids: group "))
			name := strings.Fields(strings.TrimPrefix(l, "etc/ids: "))[0]
			var err error
			if strings.HasPrefix(l, "etc/ids: group ") {
				_, err = user.LookupGroup(f[0])
			} else {
				_, err = user.Lookup(name)
			}
			if err != nil {
				t.Errorf("named a name the user database does not have: %q", l)
			}
			continue
		}
		out = append(out, l)
	}
	return out
}

// TestCheckIDsOfOtherAccounts: -check names a recorded uid that the
// system's user database gives to another account (daemon, nobody), and
// says nothing of numbers no account has, nor of a shared tree whose one
// user is an account of the database.
func TestCheckIDsOfOtherAccounts(t *testing.T) {
	ids, clashes := craftedIDs(t)
	root, _ := installed(t)
	if err := os.WriteFile(filepath.Join(root, qhome.IDsFile), []byte(ids.Format()), 0o644); err != nil {
		t.Fatal(err)
	}
	dev, err := Check(root)
	if err != nil {
		t.Fatal(err)
	}
	if got := conflictLines(t, dev); !slices.Equal(got, clashes) {
		t.Errorf("check:\n got %q\nwant %q", got, clashes)
	}

	daemon, dgid := systemAccount(t, "daemon")
	if err := os.WriteFile(filepath.Join(root, qhome.IDsFile), []byte(qhome.SharedIDs(daemon, dgid).Format()), 0o644); err != nil {
		t.Fatal(err)
	}
	if dev, err := Check(root); err != nil || slices.ContainsFunc(dev, func(l string) bool { return strings.Contains(l, "user database") }) {
		t.Errorf("shared tree of daemon: %q %v", dev, err)
	}
}

// TestInstallWarnsIDsOfOtherAccounts: the repair run of a tree whose
// etc/ids gives qmails and qmailq the uids of daemon and nobody warns of
// both, keeps the recorded ids (the tree's files carry them), and -check
// then finds nothing else.
func TestInstallWarnsIDsOfOtherAccounts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a tree with qmail's users needs root (an ordinary user's tree is shared)")
	}
	ids, clashes := craftedIDs(t)
	root, o := installed(t)
	if err := os.WriteFile(filepath.Join(root, qhome.IDsFile), []byte(ids.Format()), 0o644); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	o.Log, o.UIDBase = &log, 0 // qmail-install -root DIR: the recorded ids
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	var warned []string
	for _, l := range strings.Split(log.String(), "\n") {
		if s, ok := strings.CutPrefix(l, "qmail-install: warning: "); ok {
			warned = append(warned, s)
		}
	}
	if got := conflictLines(t, warned); !slices.Equal(got, clashes) {
		t.Errorf("repair run warned:\n got %q\nwant %q\nlog %s", got, clashes, log.String())
	}
	if kept, err := qhome.LoadIDs(root); err != nil || *kept != *ids {
		t.Errorf("etc/ids after the repair run: %+v %v, want %+v", kept, err, ids)
	}
	fi, err := os.Stat(filepath.Join(root, "queue", "info"))
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != ids.Qmails.UID {
		t.Errorf("queue/info owner %d, want the recorded %d", st.Uid, ids.Qmails.UID)
	}
	dev, err := Check(root)
	if err != nil {
		t.Fatal(err)
	}
	var rest []string
	for _, l := range dev {
		if !strings.Contains(l, "the user database gives") {
			rest = append(rest, l)
		}
	}
	if got := conflictLines(t, dev); !slices.Equal(got, clashes) || len(rest) != 0 {
		t.Errorf("check after the repair run:\n got %q\nwant %q", dev, clashes)
	}
}
