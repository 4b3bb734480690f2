package lspawn

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hqmail/hqmail/internal/testutil"
	"github.com/hqmail/hqmail/pkg/cdb"
	"github.com/hqmail/hqmail/pkg/local"
	"github.com/hqmail/hqmail/pkg/spawn"
	"github.com/hqmail/hqmail/pkg/spawn/keep"
)

// The test binary doubles as a qmail-local that crashes when
// HQ_LSPAWN_FAKE is set, one-shot or kept ("-k", answering with the
// package keep's Serve): at the delivery "fatal" writes the Go runtime's
// trace of a thread it could not start on fd 2 and exits 2, "panic"
// panics, "dirty" writes a panic line with control and 8-bit bytes and
// exits 2, and "quiet" exits 2 without a word.
func TestMain(m *testing.M) {
	switch os.Getenv("HQ_LSPAWN_TTY") {
	case "parent":
		os.Exit(ttyParent())
	case "local":
		os.Exit(realLocal())
	}
	if mode := os.Getenv("HQ_LSPAWN_FAKE"); mode != "" {
		if len(os.Args) == 2 && os.Args[1] == "-k" {
			keep.Serve(0, local.KeepHello, local.MaxKeepRequest, func(*keep.Request) []byte {
				crash(mode)
				return []byte{0}
			})
			os.Exit(0)
		}
		crash(mode)
		os.Exit(0)
	}
	// Each kept fake is the test binary started again (instrumented
	// under -race) and must greet within keep.HelloTimeout.
	keep.HelloTimeout = 30 * time.Second
	os.Exit(m.Run())
}

// crash ends a fake agent as a Go program dies (testutil.Crash).
func crash(mode string) { testutil.Crash(mode, "qmail-local gave up") }

// goTrace is what a fake agent's "fatal" crash writes.
const goTrace = testutil.GoTrace

// memdb is a map-backed Getter.
type memdb map[string]string

func (m memdb) Get(k []byte) ([]byte, bool, error) {
	v, ok := m[string(k)]
	return []byte(v), ok, nil
}

// qmail-newu's layout: six fields, five separating NULs.
func val(f ...string) string { return strings.Join(f, "\x00") }

func TestLookup(t *testing.T) {
	db := memdb{
		"!joe\x00": val("joe", "1001", "100", "/home/joe", "", ""),
		"!ann\x00": val("ann", "1002", "100", "/home/ann", "-", "x") + "\x00", // each field ended by NUL
		"!list-":   val("lists", "1003", "100", "/home/lists", "-", "l-"),
		"!list-a":  val("lists", "1003", "100", "/home/lists", "-", "la-"),
		"!":        val("alias", "1004", "100", "/var/qmail/alias", "-", ""),
		"!bob":     val("bob", "1005", "100", "/home/bob", "-", ""),
		"!up-X":    val("up", "1006", "100", "/home/up", "-", ""),
		"":         "-aX",
		"!a-b\x00": val("ab", "1007", "100", "/home/ab", "", ""),
	}
	tests := []struct {
		local string
		want  string // fields, NUL-terminated
	}{
		{"joe", val("joe", "1001", "100", "/home/joe", "", "") + "\x00"},
		{"JOE", val("joe", "1001", "100", "/home/joe", "", "") + "\x00"},
		{"ann", val("ann", "1002", "100", "/home/ann", "-", "x") + "\x00"},
		{"list-foo", val("lists", "1003", "100", "/home/lists", "-", "l-foo") + "\x00"},
		{"List-Foo", val("lists", "1003", "100", "/home/lists", "-", "l-Foo") + "\x00"},
		{"list-abc", val("lists", "1003", "100", "/home/lists", "-", "la-bc") + "\x00"},
		{"list-", val("lists", "1003", "100", "/home/lists", "-", "l-") + "\x00"},
		// "!bob" is a wildcard key but 'b' is not in the set: only "!" hits.
		{"bobby", val("alias", "1004", "100", "/var/qmail/alias", "-", "bobby") + "\x00"},
		// The set holds 'X'; lookups compare the lowercased character.
		{"up-X", val("alias", "1004", "100", "/var/qmail/alias", "-", "up-X") + "\x00"},
		{"a-b", val("ab", "1007", "100", "/home/ab", "", "") + "\x00"},
	}
	for _, tc := range tests {
		t.Run(tc.local, func(t *testing.T) {
			got, ok, err := Lookup(db, tc.local)
			if err != nil || !ok || string(got) != tc.want {
				t.Errorf("Lookup(%q) = %q, %v, %v; want %q", tc.local, got, ok, err, tc.want)
			}
		})
	}
	// No wildcard-set record: an error (qmail's exit 117), even for a
	// name the cdb has.
	for _, local := range []string{"ann", "joe"} {
		if _, _, err := Lookup(memdb{"!joe\x00": "x"}, local); err != ErrNoWildSet {
			t.Errorf("missing \"\" key, %s: %v, want ErrNoWildSet", local, err)
		}
	}
	// No hit at all.
	if _, ok, err := Lookup(memdb{"": ""}, "ann"); ok || err != nil {
		t.Errorf("no hit: ok %v err %v", ok, err)
	}
}

func TestLookupCDBFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cdb")
	recs := []cdb.Record{
		{Key: []byte("!joe\x00"), Data: []byte(val("joe", "1001", "100", "/home/joe", "", ""))},
		{Key: []byte("!joe\x00"), Data: []byte(val("second", "1", "1", "/", "", ""))},
		{Key: []byte("!ext-"), Data: []byte(val("ext", "1002", "100", "/home/ext", "-", ""))},
		{Key: []byte(""), Data: []byte("-")},
	}
	if err := cdb.WriteFile(path, 0o644, recs); err != nil {
		t.Fatal(err)
	}
	db, err := cdb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for local, want := range map[string]string{
		"joe":     "joe\x001001\x00100\x00/home/joe\x00\x00\x00",
		"ext-Foo": "ext\x001002\x00100\x00/home/ext\x00-\x00Foo\x00",
	} {
		got, ok, err := Lookup(db.Reader, local)
		if err != nil || !ok || string(got) != want {
			t.Errorf("%s: %q %v %v", local, got, ok, err)
		}
	}
}

func TestParseFields(t *testing.T) {
	// As variables, so that the test builds where int has 32 bits: there
	// the two ids keep their bits as negative ints, as the system calls
	// that take them expect.
	var bigUID, bigGID uint32 = 3000000000, 4294967294
	tests := []struct {
		in   string
		ok   bool
		want Fields
	}{
		{"joe\x001001\x00100\x00/home/joe\x00-\x00ext\x00", true, Fields{"joe", 1001, 100, "/home/joe", "-", "ext"}},
		{"joe\x001001\x00100\x00/home/joe\x00\x00\x00", true, Fields{"joe", 1001, 100, "/home/joe", "", ""}},
		{"joe\x001001\x00100\x00/home/joe\x00\x00\x00extra\x00", true, Fields{"joe", 1001, 100, "/home/joe", "", ""}},
		{"joe\x001001\x00100\x00/home/joe\x00", false, Fields{}},
		{"joe\x001001\x00100\x00/home/joe\x00\x00", false, Fields{}},
		{"joe\x001001\x00100\x00/home/joe\x00-\x00ext", false, Fields{}},
		// Ids are read as qmail's scan_ulong reads them: the leading
		// digits, none giving 0 (which Deliver refuses with 113, not 112).
		{"joe\x00x\x00100\x00/h\x00\x00\x00", true, Fields{"joe", 0, 100, "/h", "", ""}},
		{"joe\x00-1\x00100\x00/h\x00\x00\x00", true, Fields{"joe", 0, 100, "/h", "", ""}},
		{"bob\x0062347 \x0062347\x00/h\x00-\x00\x00", true, Fields{"bob", 62347, 62347, "/h", "-", ""}},
		{"carl\x0062347x\x0062347\x00/h\x00-\x00\x00", true, Fields{"carl", 62347, 62347, "/h", "-", ""}},
		{"dave\x00+62347\x0062347\x00/h\x00-\x00\x00", true, Fields{"dave", 0, 62347, "/h", "-", ""}},
		{"ed\x00abc\x0062347\x00/h\x00-\x00\x00", true, Fields{"ed", 0, 62347, "/h", "-", ""}},
		{"fay\x00\x0062347\x00/h\x00-\x00\x00", true, Fields{"fay", 0, 62347, "/h", "-", ""}},
		{"gus\x0062347\x0062347 x\x00/h\x00-\x00\x00", true, Fields{"gus", 62347, 62347, "/h", "-", ""}},
		{"hal\x0062347\x00\x00/h\x00-\x00\x00", true, Fields{"hal", 62347, 0, "/h", "-", ""}},
		{"joe\x000062347\x00100\x00/h\x00\x00\x00", true, Fields{"joe", 62347, 100, "/h", "", ""}},
		// uids past 2^31 exist (useradd -u 3000000000); 2^32-1 is (uid_t)-1.
		{"big\x003000000000\x004294967294\x00/h\x00\x00\x00", true, Fields{"big", int(bigUID), int(bigGID), "/h", "", ""}},
		{"joe\x004294967295\x00100\x00/h\x00\x00\x00", false, Fields{}},
		{"joe\x004294967296\x00100\x00/h\x00\x00\x00", false, Fields{}},
		// Leading digits too large for a uid stay malformed (112), not
		// cut to 32 bits: 4294967296+62347 would be uid 62347.
		{"joe\x004295029643\x00100\x00/h\x00\x00\x00", false, Fields{}},
		{"joe\x004294967296x\x00100\x00/h\x00\x00\x00", false, Fields{}},
		{"joe\x0099999999999999999999999999\x00100\x00/h\x00\x00\x00", false, Fields{}},
		{"joe\x00100\x004294967295 \x00/h\x00\x00\x00", false, Fields{}},
		{"", false, Fields{}},
	}
	for _, tc := range tests {
		f, ok := ParseFields([]byte(tc.in))
		if ok != tc.ok || (ok && *f != tc.want) {
			t.Errorf("ParseFields(%q) = %+v, %v", tc.in, f, ok)
		}
	}
}

func TestTranslate(t *testing.T) {
	tests := []struct {
		st     spawn.Status
		out    string
		letter byte
		text   string
	}{
		{spawn.Status{Signaled: true}, "x", 'Z', "qmail-local crashed.\n"},
		{spawn.Status{Code: 0}, "did 1+0+0\n", 'K', "did 1+0+0\n"},
		{spawn.Status{Code: 0}, "did\x00junk", 'K', "did"},
		{spawn.Status{Code: 111}, "later\n", 'Z', "later\n"},
		{spawn.Status{Code: 71}, "a", 'Z', "a"},
		{spawn.Status{Code: 74}, "a", 'Z', "a"},
		{spawn.Status{Code: 75}, "a", 'Z', "a"},
		{spawn.Status{Code: 100}, "no\n", 'D', "no\n"},
		{spawn.Status{Code: 1}, "odd", 'D', "odd"},
		{spawn.Status{Code: 2}, "panic: x\n", 'Z', "qmail-local crashed (panic: x).\n"}, // Go's fatal exit
		{spawn.Status{Code: 2}, "", 'Z', "qmail-local crashed.\n"},
		{spawn.Status{Code: 2}, goTrace, 'Z', "qmail-local crashed (fatal error: newosproc).\n"},
		{spawn.Status{Signaled: true}, "did 0+0+0\n" + goTrace, 'Z', "qmail-local crashed (fatal error: newosproc).\n"},
		{spawn.Status{Code: 112}, "x", 'Z', "Internal qmail-lspawn bug.\n"},
		{spawn.Status{Code: 113}, "x", 'Z', "Not allowed to perform deliveries as root.\n"},
		{spawn.Status{Code: 115}, "x", 'Z', "NFS failure in qmail-local.\n"},
		{spawn.Status{Code: 116}, "x", 'Z', "Unable to find alias user!\n"},
		{spawn.Status{Code: 117}, "x", 'Z', "Trouble reading users/cdb in qmail-lspawn.\n"},
		{spawn.Status{Code: 118}, "x", 'Z', "Temporary failure in qmail-lspawn.\n"},
		{spawn.Status{Code: 119}, "x", 'Z', "Out of memory in qmail-lspawn.\n"},
		{spawn.Status{Code: 120}, "x", 'Z', "Unable to run qmail-local.\n"},
		{spawn.Status{Code: 121}, "x", 'Z', "Unable to run qmail-getpw.\n"},
		{spawn.Status{Code: 126}, "x", 'D', "Unable to run qmail-local.\n"},
		{spawn.Status{Code: 114}, "x", 'D', "x"},
	}
	for _, tc := range tests {
		l, txt := Translate(tc.st, []byte(tc.out))
		if l != tc.letter || txt != tc.text {
			t.Errorf("%+v: got %c %q, want %c %q", tc.st, l, txt, tc.letter, tc.text)
		}
	}
}

// tree builds a root with fake qmail-local and qmail-getpw scripts.
func tree(t *testing.T, getpw string) (*Local, string) {
	t.Helper()
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "bin"), 0o755)
	os.MkdirAll(filepath.Join(root, "users"), 0o755)
	local := "#!/bin/sh\nprintf 'pwd=%s args=%s' \"$(pwd)\" \"$*\"; cat >/dev/null\n"
	os.WriteFile(filepath.Join(root, "bin", "qmail-local"), []byte(local), 0o755)
	os.WriteFile(filepath.Join(root, "bin", "qmail-getpw"), []byte("#!/bin/sh\n"+getpw), 0o755)
	l := New(root, "./Maildir/")
	l.Self = 4242
	return l, root
}

func deliver(t *testing.T, l *Local, rcpt string) (byte, string) {
	t.Helper()
	m, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	pr, pw, _ := os.Pipe()
	d := &spawn.Delivery{Slot: 0, Mess: "1/1", Sender: "s@x", Recipient: rcpt,
		At: strings.LastIndexByte(rcpt, '@'), Message: m, Output: pw}
	st, err := l.Deliver(d)
	pw.Close()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	out.ReadFrom(pr)
	pr.Close()
	return l.Report(st, out.Bytes())
}

func TestDeliver(t *testing.T) {
	getpw := `case "$1" in
joe*) printf 'joe\0004242\000100\000/home/joe\000-\000%s\000' "${1#joe-}";;
root) printf 'root\0000\0000\000/root\000\000\000';;
other) printf 'other\0001\0001\000/home/o\000\000\000';;
bad) printf 'garbage';;
fail) exit 116;;
crash) kill -9 $$;;
gocrash) echo 'fatal error: newosproc' >&2; exit 2;;
esac`
	l, root := tree(t, getpw)
	wd, _ := os.Getwd()
	tests := []struct {
		rcpt   string
		letter byte
		text   string
	}{
		{"joe-x@example.org", 'K', "pwd=" + wd + " args=-- joe /home/joe joe-x - x example.org s@x ./Maildir/"},
		{"@example.org", 'K', ""},
		{"root@x", 'Z', "Not allowed to perform deliveries as root.\n"},
		{"other@x", 'Z', "Unable to deliver as uid 1: qmail-lspawn runs without root and cannot switch users. (#4.3.0)\n"},
		{"bad@x", 'Z', "Internal qmail-lspawn bug.\n"},
		{"fail@x", 'Z', "Unable to find alias user!\n"},
		{"crash@x", 'Z', "Temporary failure in qmail-lspawn.\n"},
		// A crashed qmail-getpw is no crashed qmail-local.
		{"gocrash@x", 'Z', "Temporary failure in qmail-lspawn.\n"},
	}
	for _, tc := range tests {
		t.Run(tc.rcpt, func(t *testing.T) {
			l2, txt := deliver(t, l, tc.rcpt)
			if l2 != tc.letter || txt != tc.text {
				t.Errorf("got %c %q, want %c %q", l2, txt, tc.letter, tc.text)
			}
		})
	}

	// users/cdb wins over qmail-getpw.
	recs := []cdb.Record{
		{Key: []byte("!joe-x\x00"), Data: []byte(val("cdbjoe", "4242", "7", "/h", "", ""))},
		{Key: []byte(""), Data: nil},
	}
	if err := cdb.WriteFile(filepath.Join(root, "users", "cdb"), 0o644, recs); err != nil {
		t.Fatal(err)
	}
	if _, txt := deliver(t, l, "JOE-X@y"); !strings.Contains(txt, "args=-- cdbjoe /h JOE-X   y s@x") {
		t.Errorf("cdb not used: %q", txt)
	}
	// Not in cdb: falls back to qmail-getpw.
	if _, txt := deliver(t, l, "joe-z@y"); !strings.Contains(txt, "args=-- joe /home/joe joe-z - z y") {
		t.Errorf("getpw fallback: %q", txt)
	}
	// Damaged users/cdb: exit 117.
	os.WriteFile(filepath.Join(root, "users", "cdb"), []byte("short"), 0o644)
	if l2, txt := deliver(t, l, "joe@y"); l2 != 'Z' || txt != "Trouble reading users/cdb in qmail-lspawn.\n" {
		t.Errorf("bad cdb: %c %q", l2, txt)
	}
	// qmail-local missing: permanent.
	os.Remove(filepath.Join(root, "users", "cdb"))
	os.Remove(filepath.Join(root, "bin", "qmail-local"))
	if l2, txt := deliver(t, l, "joe@y"); l2 != 'D' || txt != "Unable to run qmail-local: file does not exist.\n" {
		t.Errorf("no qmail-local: %c %q", l2, txt)
	}
	// qmail-getpw missing.
	os.Remove(filepath.Join(root, "bin", "qmail-getpw"))
	if l2, txt := deliver(t, l, "joe@y"); l2 != 'Z' || txt != "Unable to run qmail-getpw.\n" {
		t.Errorf("no qmail-getpw: %c %q", l2, txt)
	}
}

// TestDeliverLaxIDs: users/cdb ids are read as qmail-lspawn reads them
// (scan_ulong): "4242 " and "4242x" deliver as uid 4242, "+4242", "abc"
// and "" are uid 0 and refused as root (113), and only an id too large
// for a uid is malformed (112). Strictly parsed, all were 112 for ever.
func TestDeliverLaxIDs(t *testing.T) {
	l, root := tree(t, "exit 1\n")
	recs := []cdb.Record{{Key: []byte(""), Data: nil}}
	for _, u := range []struct{ name, uid, gid string }{
		{"bob", "4242 ", "7"}, {"carl", "4242x", "7"}, {"dave", "+4242", "7"},
		{"ed", "abc", "7"}, {"fay", "", "7"}, {"gus", "4242", "7 x"},
		{"hal", "4294967296", "7"}, {"ian", "4242", "99999999999999999999"},
	} {
		recs = append(recs, cdb.Record{Key: []byte("!" + u.name + "\x00"),
			Data: []byte(val(u.name, u.uid, u.gid, "/h", "", ""))})
	}
	if err := cdb.WriteFile(filepath.Join(root, "users", "cdb"), 0o644, recs); err != nil {
		t.Fatal(err)
	}
	const root113, bug112 = "Not allowed to perform deliveries as root.\n", "Internal qmail-lspawn bug.\n"
	for _, tc := range []struct {
		rcpt   string
		letter byte
		text   string
	}{
		{"bob@y", 'K', "args=-- bob /h bob   y s@x ./Maildir/"},
		{"carl@y", 'K', "args=-- carl /h carl   y s@x ./Maildir/"},
		{"dave@y", 'Z', root113},
		{"ed@y", 'Z', root113},
		{"fay@y", 'Z', root113},
		{"gus@y", 'K', "args=-- gus /h gus   y s@x ./Maildir/"},
		{"hal@y", 'Z', bug112},
		{"ian@y", 'Z', bug112},
	} {
		l2, txt := deliver(t, l, tc.rcpt)
		if l2 != tc.letter || (tc.letter == 'K' && !strings.Contains(txt, tc.text)) || (tc.letter != 'K' && txt != tc.text) {
			t.Errorf("%s: got %c %q, want %c %q", tc.rcpt, l2, txt, tc.letter, tc.text)
		}
	}
}

// TestDeliverCrash: a qmail-local that crashes is reported with the Go
// runtime's reason, one-shot (from its output) and kept (from the kept
// process's fd 2), and with qmail's text when it wrote none.
func TestDeliverCrash(t *testing.T) {
	getpw := "printf 'joe\\0004242\\000100\\000/home/joe\\000-\\000\\000'\n"
	for _, tc := range []struct{ mode, text string }{
		{"fatal", "qmail-local crashed (fatal error: newosproc).\n"},
		{"panic", "qmail-local crashed (panic: qmail-local gave up).\n"},
		{"dirty", "qmail-local crashed (panic: bad ?[1m?t??).\n"},
		{"quiet", "qmail-local crashed.\n"},
	} {
		for _, kept := range []bool{false, true} {
			name := tc.mode + "/one-shot"
			if kept {
				name = tc.mode + "/kept"
			}
			t.Run(name, func(t *testing.T) {
				t.Setenv("HQ_LSPAWN_FAKE", tc.mode)
				l, _ := tree(t, getpw)
				l.QmailLocal = os.Args[0]
				if kept {
					l.NewKeep()
					l.KeepGetpw = nil // the shell script knows no -k
					t.Cleanup(l.Keep.Close)
				}
				if letter, txt := deliver(t, l, "joe@x"); letter != 'Z' || txt != tc.text {
					t.Errorf("got %c %q, want Z %q", letter, txt, tc.text)
				}
				if kept && l.Keep.Idle() != 0 {
					t.Error("a crashed process was kept")
				}
			})
		}
	}
}
