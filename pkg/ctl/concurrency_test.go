package ctl

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/qread/queuetest"
)

// concurrencyCase is one state of the concurrency files and of what
// qmail-send read at start, with what status and reload must and must
// not print.
type concurrencyCase struct {
	name  string
	files map[string]string // control files; a value "DIR" is a directory
	send  string            // FAKE_SEND_CONCURRENCY
	want  []string          // status lines (whole lines)
	not   []string          // strings status must not print
	// reload's warning on stderr ("" = none).
	reload string
}

const restart = ", but qmail-send read %d at start and reads it only then: restart qmail-send to apply it"

var concurrencyCases = []concurrencyCase{
	{
		name: "defaults, no files",
		want: []string{"concurrency: local 10, remote 20"},
		not:  []string{"warning"},
	},
	{
		name:  "files as read at start",
		files: map[string]string{"concurrencylocal": "3\n", "concurrencyremote": "50 # fifty\n"},
		send:  "3 3 50 50",
		want:  []string{"concurrency: local 3, remote 50"},
		not:   []string{"warning"},
	},
	{
		// The QA's case: 20 -> 1 on a running system.
		name:   "remote lowered",
		files:  map[string]string{"concurrencyremote": "1\n"},
		want:   []string{"concurrency: local 10, remote 20", "warning: control/concurrencyremote says 1" + fmt.Sprintf(restart, 20)},
		reload: "qmailctl: warning: control/concurrencyremote says 1" + fmt.Sprintf(restart, 20),
	},
	{
		name:   "remote raised",
		files:  map[string]string{"concurrencyremote": "50\n"},
		want:   []string{"warning: control/concurrencyremote says 50" + fmt.Sprintf(restart, 20)},
		reload: "qmailctl: warning: control/concurrencyremote says 50" + fmt.Sprintf(restart, 20),
	},
	{
		name:   "local changed",
		files:  map[string]string{"concurrencylocal": "2\n"},
		want:   []string{"warning: control/concurrencylocal says 2" + fmt.Sprintf(restart, 10)},
		reload: "qmailctl: warning: control/concurrencylocal says 2" + fmt.Sprintf(restart, 10),
	},
	{
		// Running below the control value: the spawner's limit, which
		// a restart does not change; no warning.
		name:  "limited by the spawner",
		files: map[string]string{"concurrencylocal": "200\n", "concurrencyremote": "999999\n"},
		send:  "120 200 500 500",
		want:  []string{"concurrency: local 120 (control 200, limited by the spawner), remote 500"},
		not:   []string{"warning"},
	},
	{
		name:   "above 500 now",
		files:  map[string]string{"concurrencyremote": "999999\n"},
		want:   []string{"warning: control/concurrencyremote says more than 500 (taken as 500)" + fmt.Sprintf(restart, 20)},
		reload: "qmailctl: warning: control/concurrencyremote says more than 500 (taken as 500)",
	},
	{
		// Nothing is delivered, though nothing is held.
		name:  "local stopped",
		files: map[string]string{"concurrencylocal": "0\n"},
		send:  "0 0 20 20",
		want: []string{"local: not held", "concurrency: local 0, remote 20",
			"warning: local delivery stopped: qmail-send started with control/concurrencylocal 0"},
		not: []string{"restart", "remote delivery stopped"},
	},
	{
		name:  "local stopped, file raised since",
		files: map[string]string{"concurrencylocal": "10\n"},
		send:  "0 0 20 20",
		want: []string{"warning: local delivery stopped: qmail-send started with control/concurrencylocal 0",
			"warning: control/concurrencylocal says 10" + fmt.Sprintf(restart, 0)},
		reload: "qmailctl: warning: control/concurrencylocal says 10" + fmt.Sprintf(restart, 0),
	},
	{
		// Read as qmail-send reads it: no number is the default, the
		// value it runs with: nothing changes at a restart.
		name:  "no number, the default in force",
		files: map[string]string{"concurrencyremote": "fifty\n"},
		not:   []string{"warning"},
	},
	{
		name:   "no number now",
		files:  map[string]string{"concurrencyremote": "fifty\n"},
		send:   "10 10 50 50",
		want:   []string{"warning: control/concurrencyremote does not start with a number (the default, 20)" + fmt.Sprintf(restart, 50)},
		reload: "qmailctl: warning: control/concurrencyremote does not start with a number (the default, 20)",
	},
	{
		name:   "removed since",
		send:   "10 10 50 50",
		want:   []string{"warning: control/concurrencyremote is missing (the default, 20)" + fmt.Sprintf(restart, 50)},
		reload: "qmailctl: warning: control/concurrencyremote is missing (the default, 20)",
	},
	{
		// qmail-send could not start with it (unable to read controls).
		name:   "unreadable",
		files:  map[string]string{"concurrencyremote": "DIR"},
		want:   []string{"concurrency: local 10, remote 20"},
		reload: "qmailctl: warning: unable to read control/concurrencyremote (",
	},
	{
		// An older qmail-send: nothing is guessed.
		name:  "no keys in sendstatus",
		files: map[string]string{"concurrencyremote": "1\n"},
		send:  "none",
		not:   []string{"concurrency"},
	},
}

func setupConcurrency(t *testing.T, tc concurrencyCase, env ...string) string {
	t.Helper()
	root := makeTree(t)
	for name, v := range tc.files {
		path := filepath.Join(root, "control", name)
		if v == "DIR" {
			if err := os.Mkdir(path, 0755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		queuetest.WriteFile(t, path, []byte(v))
	}
	if tc.send != "" {
		env = append(env, "FAKE_SEND_CONCURRENCY="+tc.send)
	}
	startFake(t, root, env...)
	return root
}

// TestStatusConcurrency: status shows the concurrency qmail-send runs
// with, says when a channel runs nothing (it said "not held" and nothing
// was delivered), and warns when a concurrency file now gives another
// value than qmail-send read at start: a HUP does not re-read it.
func TestStatusConcurrency(t *testing.T) {
	for _, tc := range concurrencyCases {
		t.Run(tc.name, func(t *testing.T) {
			root := setupConcurrency(t, tc)
			code, out, errs := run(t, root, "status")
			if code != ExitOK {
				t.Errorf("exit %d, stderr %q", code, errs)
			}
			lines := strings.Split(out, "\n")
			for _, w := range tc.want {
				found := false
				for _, l := range lines {
					found = found || l == w
				}
				if !found {
					t.Errorf("status lacks the line %q:\n%s", w, out)
				}
			}
			if tc.reload != "" {
				// A warning for what reload warns of.
				w := strings.TrimPrefix(tc.reload, "qmailctl: ")
				if !strings.Contains(out, "\n"+w) {
					t.Errorf("status lacks %q:\n%s", w, out)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(out, n) {
					t.Errorf("status says %q:\n%s", n, out)
				}
			}
		})
	}
}

// TestReloadConcurrency: reload, which sends the HUP that re-reads locals,
// virtualdomains and the hold flags only, warns of a concurrency file
// that differs from what qmail-send read at start, and still exits 0.
func TestReloadConcurrency(t *testing.T) {
	for _, tc := range concurrencyCases {
		t.Run(tc.name, func(t *testing.T) {
			root := setupConcurrency(t, tc)
			code, out, errs := run(t, root, "reload")
			if code != ExitOK || !strings.HasPrefix(out, "controls re-read; qmail-send (pid ") || !strings.HasSuffix(out, ") confirmed\n") {
				t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
			}
			if tc.reload == "" {
				if errs != "" {
					t.Errorf("stderr %q, want none", errs)
				}
				return
			}
			if !strings.HasPrefix(errs, tc.reload) || strings.Count(errs, "\n") != 1 {
				t.Errorf("stderr %q, want one line starting %q", errs, tc.reload)
			}
		})
	}
}

// TestStatusConcurrencyExiting: a qmail-send finishing after TERM is not
// to be restarted: its next start reads the file.
func TestStatusConcurrencyExiting(t *testing.T) {
	tc := concurrencyCase{files: map[string]string{"concurrencyremote": "1\n"}}
	root := setupConcurrency(t, tc, "FAKE_SEND_EXITING=1")
	_, out, _ := run(t, root, "status")
	want := "warning: control/concurrencyremote says 1, but qmail-send read 20 at start and reads it only then: its next start applies it\n"
	if !strings.Contains(out, want) || strings.Contains(out, "restart") {
		t.Errorf("status lacks %q:\n%s", want, out)
	}
}

// TestStatusConcurrencyOtherPid: just after a restart sendstatus is still
// the old qmail-send's; its concurrency is not the running one's, and a
// file changed before the restart is in force now. Once the new one has
// written its own, status shows it.
func TestStatusConcurrencyOtherPid(t *testing.T) {
	root := makeTree(t)
	queuetest.WriteFile(t, filepath.Join(root, "control", "concurrencyremote"), []byte("1\n"))
	queuetest.WriteFile(t, filepath.Join(root, StatusFile), []byte("pid 999999999\ngeneration 5\nholdlocal no\nholdremote no\n"+
		"concurrency-local 10\ncontrol-concurrencylocal 10\nconcurrency-remote 20\ncontrol-concurrencyremote 20\n"))
	startFakeQuiet(t, root, "FAKE_SEND_CONCURRENCY=10 10 1 1")
	_, out, _ := run(t, root, "status")
	if strings.Contains(out, "concurrency") {
		t.Errorf("status of the old qmail-send's sendstatus:\n%s", out)
	}
	if code, _, errs := run(t, root, "reload"); code != ExitOK || errs != "" {
		t.Fatalf("reload: exit %d, stderr %q", code, errs)
	}
	_, out, _ = run(t, root, "status")
	if !strings.Contains(out, "\nconcurrency: local 10, remote 1\n") || strings.Contains(out, "warning") {
		t.Errorf("status of the new qmail-send's sendstatus:\n%s", out)
	}
}

// TestConcurrencyUnreadableBySend: qmailctl run as root reads a
// concurrency file of mode 0600 of root, which qmail-send, run as qmails
// with group qmail, cannot: the warning is that it would not start again,
// not that a restart applies the value (the restart fails).
func TestConcurrencyUnreadableBySend(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: only root reads a file qmails cannot")
	}
	const qmails, qmail = 4242, 4243 // no such user or group needed
	for _, tc := range []struct {
		name     string
		uid, gid int
		mode     os.FileMode
		want     string
	}{
		{"0600 root", 0, 0, 0o600, "qmailctl: warning: unable to read control/concurrencyremote (not readable by qmails: mode 0600, uid 0, gid 0; chmod 644): " +
			"qmail-send goes on with 20, read at start, but would not start again with the file as it is\n"},
		{"0644 root", 0, 0, 0o644, "qmailctl: warning: control/concurrencyremote says 10" + fmt.Sprintf(restart, 20) + "\n"},
		{"0640 group qmail", 0, qmail, 0o640, "qmailctl: warning: control/concurrencyremote says 10" + fmt.Sprintf(restart, 20) + "\n"},
		{"0600 qmails", qmails, 0, 0o600, "qmailctl: warning: control/concurrencyremote says 10" + fmt.Sprintf(restart, 20) + "\n"},
		{"0064 qmails: the owner class applies", qmails, 0, 0o064, "qmailctl: warning: unable to read control/concurrencyremote (not readable by qmails: mode 0064, uid 4242, gid 0; chmod 644): " +
			"qmail-send goes on with 20, read at start, but would not start again with the file as it is\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := makeTree(t)
			u := qhome.User{UID: 4000, GID: qmail}
			ids := &qhome.IDs{Alias: u, Qmaild: u, Qmaill: u, Qmailp: u, Qmailq: u, Qmailr: u,
				Qmails: qhome.User{UID: qmails, GID: qmail}, Qmail: qmail, Nofiles: 4244}
			if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
				t.Fatal(err)
			}
			queuetest.WriteFile(t, filepath.Join(root, qhome.IDsFile), []byte(ids.Format()))
			p := filepath.Join(root, "control", "concurrencyremote")
			queuetest.WriteFile(t, p, []byte("10\n"))
			if err := os.Chown(p, tc.uid, tc.gid); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, tc.mode); err != nil {
				t.Fatal(err)
			}
			// As qmails: a holder of sendmutex running as another
			// user is not taken for qmail-send.
			startFakeAs(t, root, qmails, qmail)
			code, _, errs := run(t, root, "reload")
			if code != ExitOK || errs != tc.want {
				t.Errorf("reload: exit %d\n got stderr %q\nwant %q", code, errs, tc.want)
			}
		})
	}
}
