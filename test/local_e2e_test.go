package test

// Local delivery end to end through a running system (issue: scheduler and
// local delivery): Maildir, mbox, program, forward, dash extensions and
// -default files, the default delivery for a user without .qmail, a
// program that exits 111 (retried) and one that exits 100 (bounced).

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/test/harness"
)

func TestLocalDeliveryKinds(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test skipped under -short")
	}
	tr := harness.Install(t)
	ids := tr.IDs()
	a := ids.Alias
	aliasDir := tr.Path("alias")
	for _, p := range []string{"box", "fwd", "ext", "dflt"} {
		maildirAt(t, filepath.Join(aliasDir, p), a.UID, a.GID)
	}
	files := map[string]string{
		".qmail-box":          "./box/\n",
		".qmail-mbox":         aliasDir + "/saved.mbox\n",
		".qmail-prog":         "|cat > prog.out; echo \"$SENDER $RECIPIENT $EXT\" > prog.env\n",
		".qmail-fwd":          "./fwd/\n",
		".qmail-forwarder":    "&fwd@testhost.example\n",
		".qmail-list-sub":     "./ext/\n",
		".qmail-list-default": "./dflt/\n",
		".qmail-perm":         "|echo this address is closed; exit 100\n",
		".qmail-flaky":        "|test -f flag || { echo not yet; exit 111; }\n./box/\n",
	}
	for name, content := range files {
		aliasWrite(t, tr, name, content, 0o644)
	}
	// dora is a user with a home and no .qmail: the default delivery.
	uid, gid := a.UID, a.GID
	if os.Geteuid() == 0 {
		// Past 2^31 (useradd takes up to 2^32-2): ids are unsigned.
		big := uint32(3_000_000_021)
		uid = int(big)
	}
	home := tr.Path("home-dora")
	maildirAt(t, filepath.Join(home, "Maildir"), uid, gid)
	os.Chown(home, uid, gid)
	os.Chmod(home, 0o755)
	assign, _ := os.ReadFile(tr.Path("users", "assign"))
	entry := fmt.Sprintf("=dora:dora:%d:%d:%s:::\n", uint32(uid), uint32(gid), home)
	os.WriteFile(tr.Path("users", "assign"), []byte(entry+string(assign)), 0o644)
	if out, code := tr.Run(t, nil, "qmail-newu"); code != 0 {
		t.Fatalf("qmail-newu: %d %s", code, out)
	}
	sys := tr.Start(t, "./Maildir/")

	send := func(rcpt, subject string) {
		t.Helper()
		msg := fmt.Sprintf("From: sender@testhost.example\nSubject: %s\n\nFrom the start of a line\n%s body\n", subject, subject)
		if err := tr.Queue(t, "box@testhost.example", []string{rcpt}, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	send("mbox@testhost.example", "to mbox")
	send("prog@testhost.example", "to prog")
	send("forwarder@testhost.example", "to forwarder")
	send("list-sub@testhost.example", "to list-sub")
	send("list-other@testhost.example", "to list-other")
	send("dora@testhost.example", "to dora")
	send("perm@testhost.example", "to perm")
	send("flaky@testhost.example", "to flaky")

	mb := waitFile(t, filepath.Join(aliasDir, "saved.mbox"), "to mbox body\n")
	if !strings.HasPrefix(mb, "From box@testhost.example ") || !strings.Contains(mb, "\n>From the start of a line\n") ||
		!strings.Contains(mb, "Return-Path: <box@testhost.example>\nDelivered-To: mbox@testhost.example\n") {
		t.Errorf("mbox:\n%s", mb)
	}
	waitFile(t, filepath.Join(aliasDir, "prog.out"), "to prog body\n")
	env := waitFile(t, filepath.Join(aliasDir, "prog.env"), "\n")
	if env != "box@testhost.example prog@testhost.example prog\n" {
		t.Errorf("program environment: %q", env)
	}
	fw := harness.WaitMaildir(t, 30*time.Second, filepath.Join(aliasDir, "fwd"), 1)
	if !strings.Contains(string(fw[0]), "Delivered-To: forwarder@testhost.example\n") {
		t.Errorf("forwarded copy:\n%s", fw[0])
	}
	if m := harness.WaitMaildir(t, 30*time.Second, filepath.Join(aliasDir, "ext"), 1); !strings.Contains(string(m[0]), "Subject: to list-sub\n") {
		t.Errorf("list-sub:\n%s", m[0])
	}
	if m := harness.WaitMaildir(t, 30*time.Second, filepath.Join(aliasDir, "dflt"), 1); !strings.Contains(string(m[0]), "Subject: to list-other\n") {
		t.Errorf("list-default:\n%s", m[0])
	}
	if m := harness.WaitMaildir(t, 30*time.Second, filepath.Join(home, "Maildir"), 1); !strings.Contains(string(m[0]), "Delivered-To: dora@testhost.example\n") {
		t.Errorf("dora:\n%s", m[0])
	}
	// exit 100: a bounce back to box, with the program's words.
	b := waitFor(t, filepath.Join(aliasDir, "box"), "<perm@testhost.example>:\n")
	if !strings.Contains(b, "this address is closed") || !strings.Contains(b, "Subject: failure notice\n") {
		t.Errorf("bounce:\n%s", b)
	}
	// exit 111: deferred and kept; delivered once the program succeeds.
	sys.WaitLog(t, "deferral: not_yet/", 30*time.Second)
	if out, _ := tr.Run(t, nil, "qmail-qread"); !strings.Contains(out, "\tlocal\tflaky@testhost.example") {
		t.Fatalf("deferred message not queued:\n%s", out)
	}
	aliasWrite(t, tr, "flag", "", 0o644)
	sys.Signal(syscall.SIGALRM)
	waitFor(t, filepath.Join(aliasDir, "box"), "Subject: to flaky\n")
	sys.WaitLogCount(t, "end msg ", 10, 30*time.Second) // 8 messages, the forward, the bounce
}
