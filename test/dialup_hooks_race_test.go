package test

// The link hooks' ordering and survival: a release decided for an earlier
// up event never overtakes a later down event's hold, the hold of a down
// event is made before the hook returns, and the six copies of the hooks'
// shared want() function stay the same.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hqmail/hqmail/test/harness"
)

// fakeHookTools writes recording fakes of logger, nmcli (printing
// connectivity) and ip (no default route) into a new directory and
// returns it and the log file.
func fakeHookTools(t *testing.T, connectivity string) (dir, logFile string) {
	t.Helper()
	dir = t.TempDir()
	logFile = filepath.Join(dir, "syslog")
	for name, body := range map[string]string{
		"logger": fmt.Sprintf("#!/bin/sh\necho \"$*\" >>%s\n", logFile),
		"nmcli":  fmt.Sprintf("#!/bin/sh\necho %s\n", connectivity),
		"ip":     "#!/bin/sh\nexit 0\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir, logFile
}

// TestDialupHooksStaleRelease: ip-up's background job has read that
// linkwant says release and is slow to act on it (qmail-tcpok, replaced
// here by a script that waits for the test's go-ahead); meanwhile ip-down
// holds. When the ip-up job goes on it must apply what linkwant says now,
// hold: qmail-send logs no release after the hold, and the job logs that
// it held because a later event wants it. (Before, the job ran qmailctl
// release remote on what it had read, and deliveries started over a link
// that was down until the loop noticed the change.)
func TestDialupHooksStaleRelease(t *testing.T) {
	tr := ctlTree(t)
	sys := tr.Start(t, "./Maildir/")
	fake, logFile := fakeHookTools(t, "none")
	gate := filepath.Join(fake, "go")
	started := filepath.Join(fake, "tcpok-started")
	t.Cleanup(func() { os.WriteFile(gate, nil, 0o644) }) // no sleeper left behind
	tcpok := tr.Bin("qmail-tcpok")
	if err := os.Remove(tcpok); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf("#!/bin/sh\n: >%s\ni=0\nwhile [ ! -e %s ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\n", started, gate)
	if err := os.WriteFile(tcpok, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	ppp := []string{"/dev/ttyS0", "115200", "10.0.0.1", "10.0.0.2", ""}
	run := func(hook string) {
		t.Helper()
		cmd := exec.Command("/bin/sh", append([]string{scriptPath(t, "ppp/"+hook+"/hqmail"), "ppp0"}, ppp...)...)
		cmd.Env = []string{"PATH=" + fake + ":/usr/sbin:/usr/bin:/sbin:/bin", "QMAILHOME=" + tr.Root}
		if out, err := cmd.CombinedOutput(); err != nil || len(out) != 0 {
			t.Fatalf("%s: %v, output %q", hook, err, out)
		}
	}
	logged := func() string {
		b, _ := os.ReadFile(logFile)
		return string(b)
	}

	run("ip-up.d")
	harness.WaitForFile(t, dialBound, started) // the job has read "release"
	run("ip-down.d")
	if !harness.Eventually(dialBound, func() bool { return strings.Contains(logged(), "link ppp0 down:") }) {
		t.Fatalf("ip-down's job logged nothing within %v", dialBound)
	}
	if ok, state := holdAgrees(tr, sys); !ok || sys.Status()["holdremote"] != "all" {
		t.Fatalf("after ip-down: %s", state)
	}
	releases := sys.Count("hold: remote released")

	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if !harness.Eventually(dialBound, func() bool {
		return strings.Contains(logged(), "link ppp0 up:") && !running(scriptPath(t, "ppp/ip-up.d/hqmail"))
	}) {
		t.Fatalf("ip-up's job logged nothing, or still runs, after %v; log:\n%s", dialBound, logged())
	}
	want := "-t hqmail-ppp -- link ppp0 down: remote delivery held\n" +
		"-t hqmail-ppp -- link ppp0 up: remote delivery held (a later event wants it)\n"
	if got := logged(); got != want {
		t.Errorf("hook log:\n%s\nwant:\n%s", got, want)
	}
	if n := sys.Count("hold: remote released"); n != releases {
		t.Errorf("qmail-send released remote delivery %d times after ip-down's hold; log:\n%s", n-releases, sys.Log())
	}
	if ok, state := holdAgrees(tr, sys); !ok || sys.Status()["holdremote"] != "all" {
		t.Errorf("at the end: %s", state)
	}
	b, _ := os.ReadFile(tr.Path("control", "linkwant"))
	if string(b) != "hold\n" {
		t.Errorf("linkwant says %q", b)
	}
}

// TestDialupHookHoldSurvivesKill: a down hook's hold is made before the
// hook returns. The caller here kills its whole process group right after
// the hook (as systemd does with what pppd leaves behind when it exits
// after ip-down): the flag is there, and qmail-send has been signalled
// and holds, although the hook's background job was killed.
func TestDialupHookHoldSurvivesKill(t *testing.T) {
	tr := ctlTree(t)
	sys := tr.Start(t, "./Maildir/")
	fake, _ := fakeHookTools(t, "none")
	for _, h := range []struct {
		name, script string
		args, env    []string
	}{
		{"ppp ip-down", "ppp/ip-down.d/hqmail", []string{"ppp0", "/dev/ttyS0", "115200", "10.0.0.1", "10.0.0.2", ""}, nil},
		{"nm down", "networkmanager/90-hqmail", []string{"wlan0", "down"}, nil},
		{"nm connectivity none", "networkmanager/90-hqmail", []string{"", "connectivity-change"}, []string{"CONNECTIVITY_STATE=NONE"}},
		{"networkd off", "networkd-dispatcher/off.d/hqmail", nil, []string{"IFACE=eth0", "STATE=off"}},
		{"networkd no-carrier", "networkd-dispatcher/no-carrier.d/hqmail", nil, []string{"IFACE=eth0", "STATE=no-carrier"}},
	} {
		// Released first, as a link that was up.
		if out, code := ctl(t, tr, "linkwant", "release"); code != 0 {
			t.Fatalf("linkwant release: %d %s", code, out)
		}
		if out, code := ctl(t, tr, "release", "remote"); code != 0 || sys.Status()["holdremote"] != "no" {
			t.Fatalf("release remote: %d %s", code, out)
		}
		argv := append([]string{"-c", `/bin/sh "$@"; kill -TERM 0`, "sh", scriptPath(t, h.script)}, h.args...)
		cmd := exec.Command("/bin/sh", argv...)
		cmd.Env = append([]string{"PATH=" + fake + ":/usr/sbin:/usr/bin:/sbin:/bin", "QMAILHOME=" + tr.Root}, h.env...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		err := cmd.Wait()
		// The group killed itself; whatever of it is still exiting is
		// killed now, while its group id cannot have been reused.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM || out.Len() != 0 {
			t.Fatalf("%s: want the caller killed by its own TERM: %v, output %q", h.name, err, out.String())
		}
		if b, _ := os.ReadFile(tr.Path("control", "linkwant")); string(b) != "hold\n" {
			t.Errorf("%s: linkwant says %q", h.name, b)
		}
		if _, err := os.Stat(tr.Path("control", "holdremote")); err != nil {
			t.Errorf("%s: the hold was lost with the killed job: %v", h.name, err)
			continue
		}
		// Nobody else signals qmail-send: the hook's own HUP made it hold.
		if !harness.Eventually(dialBound, func() bool { return sys.Status()["holdremote"] == "all" }) {
			t.Errorf("%s: qmail-send does not hold: %s", h.name, sys.Status()["holdremote"])
		}
	}
}

// TestDialupHookWantIdentical: each hook is installed alone, so each
// carries its own copy of want() and the comment above it; they must not
// drift apart.
func TestDialupHookWantIdentical(t *testing.T) {
	var first, firstName string
	for _, rel := range []string{
		"ppp/ip-up.d/hqmail", "ppp/ip-down.d/hqmail", "networkmanager/90-hqmail",
		"networkd-dispatcher/routable.d/hqmail", "networkd-dispatcher/off.d/hqmail", "networkd-dispatcher/no-carrier.d/hqmail",
	} {
		b, err := os.ReadFile(scriptPath(t, rel))
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		i := strings.Index(s, "# want hold|release TEXT:")
		j := strings.Index(s, "\nwant() {\n")
		k := -1
		if j > 0 {
			k = strings.Index(s[j:], "\n}\n")
		}
		if i < 0 || j < i || k < 0 {
			t.Fatalf("%s: no want() with its comment", rel)
		}
		w := s[i : j+k+3]
		if first == "" {
			first, firstName = w, rel
			continue
		}
		if w != first {
			t.Errorf("want() of %s differs from that of %s", rel, firstName)
		}
	}
}

// TestDialupHooksOlderQmailctl: during an upgrade or a rollback the hooks
// may meet a qmailctl that records linkwant but knows no "linkwant apply"
// (exit 100). They fall back to hold remote / release remote, so the
// event is still applied (upg3 QA: an ip-down left remote mail flowing and
// an ip-up left it held for good, each logging a usage error).
func TestDialupHooksOlderQmailctl(t *testing.T) {
	tr := ctlTree(t)
	sys := tr.Start(t, "./Maildir/")
	real := tr.Path("bin", "qmailctl.real")
	if err := os.Rename(tr.Path("bin", "qmailctl"), real); err != nil {
		t.Fatal(err)
	}
	older := "#!/bin/sh\n" +
		"if [ \"$1\" = linkwant ] && [ \"$2\" = apply ]; then\n" +
		"  echo 'qmailctl: usage: qmailctl linkwant [hold|release]' >&2; exit 100\n" +
		"fi\n" +
		"exec " + real + " \"$@\"\n"
	if err := os.WriteFile(tr.Path("bin", "qmailctl"), []byte(older), 0o755); err != nil {
		t.Fatal(err)
	}
	runPPPHook(t, tr, "ip-up.d", "ppp0")
	waitHold(t, tr, sys, false)
	runPPPHook(t, tr, "ip-down.d", "ppp0")
	// The fallback hold is made before the hook returns.
	if _, err := os.Stat(tr.Path("control", "holdremote")); err != nil {
		t.Errorf("ip-down returned without the hold: %v", err)
	}
	waitHold(t, tr, sys, true)
	runPPPHook(t, tr, "ip-up.d", "ppp0")
	waitHold(t, tr, sys, false)
}
