package install

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/pkg/qerr"
)

// put writes the queue file rel (below queue/), making its directory.
func put(t *testing.T, root, rel string) {
	t.Helper()
	p := filepath.Join(root, "queue", rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestQueueID(t *testing.T) {
	for _, tc := range []struct {
		name string
		id   uint64
		ok   bool
	}{
		{"0", 0, true}, {"4141", 4141, true}, {"18446744073709551615", 1<<64 - 1, true},
		{"", 0, false}, {"0123", 0, false}, {"12.tmp", 0, false}, {"+5", 0, false},
		{"-5", 0, false}, {"18446744073709551616", 0, false}, {"heldmsgs", 0, false},
	} {
		id, ok := queueID(tc.name)
		if id != tc.id || ok != tc.ok {
			t.Errorf("queueID(%q) = %d, %v; want %d, %v", tc.name, id, ok, tc.id, tc.ok)
		}
	}
}

// TestCheckStrayQueue: files a qmail with another conf-split left in the
// split directories (mess/30/ID, which hqmail does not have; mess/5/ID
// where ID mod 23 is not 5) are counted on one line with the cause and
// the command that moves them; a queue where every file is in the
// directory of its id modulo 23 (names that are no id aside) has no line.
// The command, run by sh, moves them so that -check is clean.
func TestCheckStrayQueue(t *testing.T) {
	root, _ := installed(t)
	// In place: 4141 % 23 = 1, 302 % 23 = 3, 23 % 23 = 0.
	for _, rel := range []string{"mess/1/4141", "info/1/4141", "remote/1/4141", "mess/3/302", "local/3/302",
		"mess/0/23", "mess/7/302.tmp", "mess/7/0123", "info/8/.x"} {
		put(t, root, rel)
	}
	if err := os.MkdirAll(filepath.Join(root, "queue", "mess", "150"), 0o750); err != nil {
		t.Fatal(err)
	}
	if dev, err := Check(root); err != nil || len(dev) != 0 {
		t.Fatalf("check of a queue in place: %q %v", dev, err)
	}

	// Out of place: 9030 % 23 = 14, 326 % 23 = 4; 9001 % 151 = 92,
	// 9001 % 23 = 8; 4164 % 151 = 87, 4164 % 23 = 1.
	for _, rel := range []string{"mess/30/9030", "mess/5/326", "info/92/9001", "mess/92/9001", "local/87/4164"} {
		put(t, root, rel)
	}
	dev, err := Check(root)
	if err != nil || len(dev) != 1 {
		t.Fatalf("check of a queue out of place: %q %v", dev, err)
	}
	q := filepath.Join(root, "queue")
	for _, want := range []string{
		"queue: 5 file(s) not in the split directory of their id modulo 23 (mess 3, info 1, local 1; e.g. queue/mess/5/326); " +
			"4 of them in split directories numbered 23 and above, which hqmail does not have (the highest is 150: a conf-split of 151?): ",
		"likely a queue left by a qmail built with a conf-split other than 23. Stop qmail-send, then move each file",
		MoveCommand(q),
	} {
		if !strings.Contains(dev[0], want) {
			t.Errorf("check line %q lacks %q", dev[0], want)
		}
	}
	if !strings.HasSuffix(dev[0], "and run qmail-install -check again") {
		t.Errorf("check line %q: the end", dev[0])
	}

	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh to run the command")
	}
	if out, err := exec.Command(sh, "-c", MoveCommand(q)).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v %s", MoveCommand(q), err, out)
	}
	for _, rel := range []string{"mess/14/9030", "mess/4/326", "info/8/9001", "mess/8/9001", "local/1/4164",
		"mess/1/4141", "mess/7/302.tmp", "mess/7/0123", "info/8/.x"} {
		if _, err := os.Stat(filepath.Join(q, rel)); err != nil {
			t.Errorf("after the command: %v", err)
		}
	}
	if dev, err := Check(root); err != nil || len(dev) != 0 {
		t.Errorf("check after the command: %q %v", dev, err)
	}
	// A file whose place is taken stays, and is named again.
	put(t, root, "mess/5/302")
	if out, err := exec.Command(sh, "-c", MoveCommand(q)).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v %s", MoveCommand(q), err, out)
	}
	if _, err := os.Stat(filepath.Join(q, "mess/5/302")); err != nil {
		t.Errorf("a file whose place is taken: %v", err)
	}
	if dev, _ := Check(root); len(dev) != 1 || !strings.HasPrefix(dev[0], "queue: 1 file(s) not in the split directory of their id modulo 23 (mess 1; e.g. queue/mess/5/302): ") {
		t.Errorf("check of a file whose place is taken: %q", dev)
	}
}

// TestInstallStrayQueue: the repair names misplaced queue files as -check
// does, moves none of them, and exits 111; once they are in place it
// succeeds.
func TestInstallStrayQueue(t *testing.T) {
	root, o := installed(t)
	put(t, root, "mess/30/9030")
	put(t, root, "info/5/302")
	err := Install(o)
	var left *LeftAlone
	if !errors.As(err, &left) || qerr.ExitCode(err) != 111 {
		t.Fatalf("repair: %v, want the queue left alone, exit 111", err)
	}
	q := filepath.Join(root, "queue")
	i := slices.IndexFunc(left.Problems, func(p string) bool { return strings.HasPrefix(p, "queue: 2 file(s) not in the split directory") })
	if i < 0 || !strings.Contains(left.Problems[i], MoveCommand(q)) ||
		!strings.Contains(left.Problems[i], "; left alone (qmail-install never moves mail). Stop qmail-send, then ") ||
		!strings.HasSuffix(left.Problems[i], ", and run qmail-install again") {
		t.Fatalf("repair's problems: %q", left.Problems)
	}
	for _, rel := range []string{"mess/30/9030", "info/5/302"} {
		if _, err := os.Stat(filepath.Join(q, rel)); err != nil {
			t.Errorf("the repair moved mail: %v", err)
		}
	}
	os.Rename(filepath.Join(q, "mess/30/9030"), filepath.Join(q, "mess/14/9030"))
	os.Rename(filepath.Join(q, "info/5/302"), filepath.Join(q, "info/3/302"))
	if err := Install(o); err != nil {
		t.Errorf("repair of a queue in place: %v", err)
	}
}

// TestCheckQmailTree: a tree qmail itself installed (queue/ and control/,
// no etc/ids) is no tree yet, and the line says how to take it over.
func TestCheckQmailTree(t *testing.T) {
	root := t.TempDir()
	os.Mkdir(filepath.Join(root, "queue"), 0o750)
	os.Mkdir(filepath.Join(root, "control"), 0o755)
	dev, err := Check(root)
	want := "no qmail tree at " + root + " (etc/ids missing): it has queue/ and control/ but no etc/ids, " +
		"so it looks like a tree qmail itself installed; with qmail stopped, qmail-install -root " + root +
		" (make install) takes it over, keeping its queue and control files (see docs/migrating.md, \"From qmail\"), " +
		"then run qmail-install -check again"
	if !errors.Is(err, ErrNoTree) || qerr.ExitCode(err) != 100 || dev != nil || err.Error() != want {
		t.Errorf("check: %q %v; want %q", dev, err, want)
	}
	// control/ alone (or a file named queue) is no such tree: no hint.
	os.Remove(filepath.Join(root, "queue"))
	os.WriteFile(filepath.Join(root, "queue"), nil, 0o644)
	if _, err := Check(root); err == nil || err.Error() != "no qmail tree at "+root+" (etc/ids missing; -root names another)" {
		t.Errorf("check of control/ and a file queue: %v", err)
	}
}
