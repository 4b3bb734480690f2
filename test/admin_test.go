package test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hqmail/hqmail/test/harness"
)

// TestAdminToolsOnInstalledTree runs the installed admin programs on a tree
// made by qmail-install, with a running qmail-send for qmail-qread.
func TestAdminToolsOnInstalledTree(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test skipped under -short")
	}
	tr := harness.Install(t)

	// qmail-showctl: exit 0, the tree's name and ids.
	out, code := tr.Run(t, nil, "qmail-showctl")
	if code != 0 || !strings.Contains(out, "qmail home directory: "+tr.Root+".\n") ||
		!strings.Contains(out, "me (every program: this host's fully qualified name; the default of most host names): testhost.example.\n") ||
		!strings.Contains(out, "subdirectory split: 23.\n") || !strings.Contains(out, "user ids: alias ") {
		t.Errorf("qmail-showctl (exit %d):\n%s", code, out)
	}

	// qmail-newmrh: the cdb is readable by tinycdb.
	tr.Control("morercpthosts", "One.Example\ntwo.example\n")
	if out, code := tr.Run(t, nil, "qmail-newmrh"); code != 0 {
		t.Fatalf("qmail-newmrh: exit %d: %s", code, out)
	}
	if cdb, err := exec.LookPath("cdb"); err == nil {
		dump, err := exec.Command(cdb, "-d", tr.Path("control", "morercpthosts.cdb")).Output()
		if err != nil || string(dump) != "+11,0:one.example->\n+11,0:two.example->\n\n" {
			t.Errorf("cdb -d: %v %q", err, dump)
		}
	} else {
		t.Log("cdb (tinycdb) not installed; cross-check skipped")
	}
	if out, _ := tr.Run(t, nil, "qmail-showctl"); strings.Contains(out, "Oops!") {
		t.Errorf("showctl complains after qmail-newmrh:\n%s", out)
	}

	// qmail-pw2u: a line in, assign lines out.
	// The home must be the account's, as for qmail-getpw.
	uid := os.Getuid()
	if uid == 0 {
		uid = 1234
	}
	home := tr.Path("home-joe")
	os.Mkdir(home, 0o755)
	os.Chown(home, uid, 100)
	out, code = tr.Run(t, []byte(fmt.Sprintf("joe:x:%d:100::%s:/bin/sh\n", uid, home)), "qmail-pw2u")
	if want := fmt.Sprintf("=joe:joe:%d:100:%s:::\n+joe-:joe:%d:100:%s:-::\n.\n", uid, home, uid, home); code != 0 || out != want {
		t.Errorf("qmail-pw2u: exit %d: %q, want %q", code, out, want)
	}

	// qmail-qread and qmail-qstat on the real queue, held remote mail.
	tr.Control("holdremote", "")
	tr.Control("smtproutes", ":[127.0.0.1]:1\n")
	tr.Start(t, "./Maildir/")
	if err := tr.Queue(t, "s@testhost.example", []string{"r@remote.example", "q@other.example"}, []byte("Subject: x\n\nbody\n")); err != nil {
		t.Fatal(err)
	}
	waitPreprocessed(t, tr, 1)
	out, code = tr.Run(t, nil, "qmail-qread")
	lines := strings.Split(out, "\n")
	if code != 0 || len(lines) != 4 || !strings.Contains(lines[0], " GMT  #") ||
		!strings.HasSuffix(lines[0], "  <s@testhost.example> ") ||
		lines[1] != "\tremote\tr@remote.example held" || lines[2] != "\tremote\tq@other.example held" {
		t.Errorf("qmail-qread (exit %d):\n%q", code, out)
	}
	// The date is the info file's mtime, within a minute of now.
	var id int
	if i := strings.Index(lines[0], "#"); i > 0 {
		fmt.Sscanf(lines[0][i+1:], "%d", &id)
	}
	if fi, err := os.Stat(tr.Path("queue", "info", fmt.Sprint(id%23), fmt.Sprint(id))); err != nil ||
		!strings.HasPrefix(lines[0], fi.ModTime().UTC().Format("2 Jan 2006 15:04:05")+" GMT") ||
		time.Since(fi.ModTime()) > time.Hour {
		t.Errorf("qmail-qread date/id: %q (%v)", lines[0], err)
	}
}
