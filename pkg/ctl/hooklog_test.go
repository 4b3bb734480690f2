package ctl

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHookLogsUnconfirmedChange: a link hook's background job logs
// "remote delivery held" only once qmail-send has confirmed the hold.
// Here qmail-send never answers (muted, as one that is SIGSTOPped), and
// an up event releases while the down job's linkwant apply waits for the
// confirmation of its hold: that apply then finds the flag changed again,
// leaves the confirmation to the later change and exits 0. The job's log
// line says the hold was not confirmed, with what qmailctl said; it said
// "link ppp0 down: remote delivery held" as if confirmed, since the hook
// kept only the first word of qmailctl's output (QA rhold3). The job goes
// on with the later event's release (qmail-send gone by then: its next
// start honours it).
//
// The hook runs with bin/qmailctl a wrapper that makes this test binary
// qmailctl (TestMain, nofileChildEnv) with -t 30: the wait ends when the
// fake qmail-send is killed ("exited before confirming"), not by its
// time-out.
func TestHookLogsUnconfirmedChange(t *testing.T) {
	script, err := filepath.Abs(filepath.Join("..", "..", "scripts", "ppp", "ip-down.d", "hqmail"))
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	root := makeTree(t)
	fake := t.TempDir()
	logFile, hups := filepath.Join(fake, "syslog"), filepath.Join(fake, "hups")
	bin := filepath.Join(root, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for path, body := range map[string]string{
		filepath.Join(fake, "logger"):     fmt.Sprintf("#!/bin/sh\necho \"$*\" >>'%s'\n", logFile),
		filepath.Join(bin, "qmailctl"):    fmt.Sprintf("#!/bin/sh\n%s='256 %s' exec '%s' -t 30 \"$@\"\n", nofileChildEnv, root, exe),
		filepath.Join(bin, "qmail-tcpok"): "#!/bin/sh\nexit 0\n",
	} {
		if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// lines returns the whole lines of the file at path.
	lines := func(path string) []string {
		b, _ := os.ReadFile(path)
		i := strings.LastIndexByte(string(b), '\n')
		if i < 0 {
			return nil
		}
		return strings.Split(string(b[:i]), "\n")
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 60s; hook log %q", what, lines(logFile))
			}
		}
	}
	send := startFake(t, root, "FAKE_SEND_MUTE=1", "FAKE_SEND_HUPLOG="+hups)

	cmd := exec.Command("/bin/sh", script, "ppp0", "/dev/ttyS0", "115200", "10.0.0.1", "10.0.0.2", "")
	cmd.Env = []string{"PATH=" + fake + ":/usr/bin:/bin", "QMAILHOME=" + root}
	if out, err := cmd.CombinedOutput(); err != nil || len(out) != 0 {
		t.Fatalf("ip-down: %v, output %q", err, out)
	}
	if file, _ := readFlag(t, root, "holdremote"); file != "*\n" {
		t.Fatalf("holdremote %q once ip-down returned", file)
	}
	// The first HUP is the hook's own (linkwant apply nowait), taken
	// before the hook returned; the second the job's, sent once its apply
	// has written the flag and let the lock go.
	waitFor("the hook's HUP", func() bool { return len(lines(hups)) >= 1 })
	waitFor("the job's HUP", func() bool { return len(lines(hups)) >= 2 })
	// The up event, while the job waits for qmail-send.
	if code, _, errs := run(t, root, "linkwant", "release"); code != ExitOK {
		t.Fatalf("linkwant release: exit %d, %s", code, errs)
	}
	if code, _, errs := run(t, root, "-t", "5", "linkwant", "apply", "nowait"); code != ExitOK {
		t.Fatalf("linkwant apply nowait (release): exit %d, %s", code, errs)
	}
	send.Process.Kill()
	waitFor("two lines logged", func() bool { return len(lines(logFile)) >= 2 })
	waitFor("the job's end", func() bool { return !runningScript(script) })

	want := []string{
		"-t hqmail-ppp -- link ppp0 down: remote delivery held, not confirmed by qmail-send: " +
			"control/holdremote changed again since (not held), by a later change that waits for its own confirmation",
		"-t hqmail-ppp -- link ppp0 down: remote delivery released (a later event wants it); qmail-send is not running, its next start honours it",
	}
	if got := lines(logFile); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("hook log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// runningScript reports whether a process runs the shell script path (the
// hook's background job, a subshell of it).
func runningScript(path string) bool {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), "\x00"+path+"\x00") {
			return true
		}
	}
	return false
}

// TestHookLogsFailureNotNote: when qmailctl's apply fails after a note of
// its own (a linked holdremote replaced by a file), the hook's log line
// gives the failure, not the note (it gave the first "qmailctl:" line,
// the note: QA rtoday2).
func TestHookLogsFailureNotNote(t *testing.T) {
	script, err := filepath.Abs(filepath.Join("..", "..", "scripts", "ppp", "ip-up.d", "hqmail"))
	if err != nil {
		t.Fatal(err)
	}
	root, fake := t.TempDir(), t.TempDir()
	logFile := filepath.Join(fake, "syslog")
	bin := filepath.Join(root, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	// A qmailctl that records, reads back "release" and fails to apply it.
	qmailctl := `#!/bin/sh
case "$*" in
"linkwant release") exit 0 ;;
"linkwant") echo release; exit 0 ;;
"linkwant apply")
  echo release
  echo "qmailctl: note: control/holdremote was a symbolic link to /etc/shared: it is a file of its own now" >&2
  echo "qmailctl: fatal: qmail-send (pid 42) did not confirm the release within 10s" >&2
  exit 111 ;;
esac
exit 100
`
	for path, body := range map[string]string{
		filepath.Join(fake, "logger"):     fmt.Sprintf("#!/bin/sh\necho \"$*\" >>'%s'\n", logFile),
		filepath.Join(bin, "qmailctl"):    qmailctl,
		filepath.Join(bin, "qmail-tcpok"): "#!/bin/sh\nexit 0\n",
	} {
		if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("/bin/sh", script, "ppp0")
	cmd.Env = []string{"QMAILHOME=" + root, "PATH=" + fake + ":/usr/bin:/bin"}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hook: %v\n%s", err, out)
	}
	var got string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if b, _ := os.ReadFile(logFile); strings.HasSuffix(string(b), "\n") {
			got = string(b)
			break
		}
	}
	if !strings.Contains(got, "remote failed (status 111): qmailctl: fatal: qmail-send (pid 42) did not confirm") || strings.Contains(got, "note:") {
		t.Errorf("hook's log: %q", got)
	}
}
