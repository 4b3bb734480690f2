package test

import (
	"bytes"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/test/harness"
)

// TestInstallLocalhostStaysLocal: with a me that has a dot (laptop.test),
// sendmail makes user@localhost user@localhost.laptop.test (a host
// without a dot gets .defaultdomain); a new tree's locals hold that name,
// so the message is delivered on the host, not handed to qmail-remote
// (and the smarthost). On a tree whose locals lack it, -check says so
// with the line to add.
func TestInstallLocalhostStaysLocal(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	tr := harness.Install(t, harness.WithMe("laptop.test"))
	b, err := os.ReadFile(tr.Path("control", "locals"))
	if err != nil || string(b) != "laptop.test\nlocalhost\nlocalhost.laptop.test\n" {
		t.Fatalf("locals %q %v", b, err)
	}
	if out, code := tr.Run(t, nil, "qmail-install", "-root", tr.Root, "-check"); code != 0 {
		t.Errorf("-check of a new tree: exit %d\n%s", code, out)
	}

	// Every local part reaches the alias home (users/assign); lapuser
	// has a Maildir there. Remote mail would go nowhere: held, and
	// routed to a closed port.
	var st syscall.Stat_t
	if err := syscall.Stat(tr.Path("alias"), &st); err != nil {
		t.Fatal(err)
	}
	dq := tr.Path("alias", ".qmail-lapuser")
	if err := os.WriteFile(dq, []byte("./Maildir/\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chown(dq, int(st.Uid), int(st.Gid))
	tr.Control("holdremote", "")
	tr.Control("smtproutes", ":[127.0.0.1]:1\n")
	sys := tr.Start(t, "./Maildir/")
	cmd := tr.Command("sendmail", "lapuser@localhost")
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "QMAIL") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	cmd.Stdin = bytes.NewReader([]byte("Subject: x\n\nx\n"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sendmail: %v\n%s", err, out)
	}
	sys.WaitLog(t, "to local lapuser@localhost.laptop.test", 30*time.Second)
	harness.WaitMaildir(t, 30*time.Second, tr.AliasMaildir(), 1)
	if n := sys.Count(" to remote "); n != 0 {
		t.Errorf("%d remote deliveries; log:\n%s", n, sys.Log())
	}
	sys.Stop(t)

	// A tree made before: its locals and rcpthosts lack the name (a new
	// install writes it to both, and -check says so).
	tr.Control("locals", "laptop.test\nlocalhost\n")
	tr.Control("rcpthosts", "laptop.test\nlocalhost\n")
	out, code := tr.Run(t, nil, "qmail-install", "-root", tr.Root, "-check")
	want := "qmail-install: warning: control/locals: lacks localhost.laptop.test, the domain qmail-inject and sendmail give mail to user@localhost " +
		"(they append .laptop.test, from control/defaultdomain, to a host without a dot): such mail is not local and is sent away; " +
		"add the line localhost.laptop.test to control/locals and to control/rcpthosts (as a new install does), then run qmailctl reload\n"
	if code != 100 || out != want {
		t.Errorf("-check of old locals: exit %d\n got %q\nwant %q", code, out, want)
	}
}
