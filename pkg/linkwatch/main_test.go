package linkwatch

import (
	"bytes"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeNmcli puts an nmcli on PATH that answers the metered question with
// the content of the file it returns, and records each call's arguments
// in the file calls returns.
func fakeNmcli(t *testing.T) (state, calls string) {
	t.Helper()
	dir := t.TempDir()
	state, calls = filepath.Join(dir, "metered"), filepath.Join(dir, "calls")
	script := "#!/bin/sh\necho \"$*\" >> " + calls + "\n" +
		"[ \"$1 $2 $3 $4 $5\" = '-t -g GENERAL.METERED device show' ] || exit 2\ncat " + state + "\n"
	if err := os.WriteFile(filepath.Join(dir, "nmcli"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return state, calls
}

// TestCheckAsTheDaemonDecides: -check judges the link as the daemon does:
// with -metered, NetworkManager (a fake nmcli here, found on PATH as the
// daemon finds it) saying metered makes it "down", worded as the daemon's
// log line; with -probe, so does a probe that fails. Before, -check
// looked at the route only and said "up" while the daemon held.
func TestCheckAsTheDaemonDecides(t *testing.T) {
	state, calls := fakeNmcli(t)
	write := func(name, s string) {
		t.Helper()
		if err := os.WriteFile(name, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(state, "yes\n")
	refuse := true
	dial := func(network, addr string) (net.Conn, error) {
		if refuse {
			return nil, errors.New("connection refused")
		}
		a, b := net.Pipe()
		b.Close()
		return a, nil
	}
	h := Hooks{Snapshot: func() (*Snapshot, error) { return snap(true), nil }, IsMetered: nmMetered, Dial: dial}
	run := func(cfg Config, wantCode int, wantOut string) {
		t.Helper()
		var out, errb bytes.Buffer
		if code := checkNow(cfg, h, &out, &errb); code != wantCode || out.String() != wantOut+"\n" || errb.Len() != 0 {
			t.Errorf("%+v: exit %d, %q, stderr %q; want exit %d, %q", cfg, code, out.String(), errb.String(), wantCode, wantOut)
		}
	}
	run(Config{Metered: true}, 1, "down: link up but metered (default route via ppp0)")
	if b, _ := os.ReadFile(calls); string(b) != "-t -g GENERAL.METERED device show ppp0\n" {
		t.Errorf("nmcli called with %q", b)
	}
	write(state, "yes (guessed)\n")
	run(Config{Metered: true, Iface: "ppp0"}, 1, "down: link up but metered (default route via ppp0)")
	write(state, "no (guessed)\n")
	run(Config{Metered: true}, 0, "up: default route via ppp0")
	// Without -metered, NetworkManager is not asked.
	write(state, "yes\n")
	write(calls, "")
	run(Config{}, 0, "up: default route via ppp0")
	if b, _ := os.ReadFile(calls); len(b) != 0 {
		t.Errorf("nmcli called without -metered: %q", b)
	}
	// A link that is down is down whatever NetworkManager says.
	h.Snapshot = func() (*Snapshot, error) { return snap(false), nil }
	run(Config{Metered: true}, 1, "down: no default route")
	h.Snapshot = func() (*Snapshot, error) { return snap(true), nil }

	run(Config{Probe: "smarthost:587"}, 1, "down: link up (default route via ppp0) but probe smarthost:587 failed: connection refused")
	refuse = false
	run(Config{Probe: "smarthost:587"}, 0, "up: default route via ppp0")
	// Metered is asked first, as the daemon does.
	run(Config{Probe: "smarthost:587", Metered: true}, 1, "down: link up but metered (default route via ppp0)")

	h.Snapshot = func() (*Snapshot, error) { return nil, errors.New("netlink links: permission denied") }
	var out, errb bytes.Buffer
	if code := checkNow(Config{}, h, &out, &errb); code != 111 || !strings.Contains(errb.String(), "fatal: netlink links") {
		t.Errorf("netlink trouble: exit %d, %q %q", code, out.String(), errb.String())
	}
}

// TestProbeForm: -probe takes host:port with a numeric port from 1 to
// 65535; anything else is a usage error (exit 100) at start, for the
// daemon and for -check alike, before the link is looked at. Before,
// "-probe nohostport" was taken: -check said "down: ... missing port in
// address" and the daemon kept remote mail held for good.
func TestProbeForm(t *testing.T) {
	for _, tc := range []struct {
		probe string
		ok    bool
	}{
		{"smarthost.example:587", true},
		{"192.0.2.7:25", true},
		{"[2001:db8::7]:25", true},
		{"localhost:1", true},
		{"relay:65535", true},
		{"nohostport", false},
		{"smarthost.example", false},
		{"smarthost.example:", false},
		{":25", false},
		{"smarthost.example:smtp", false},
		{"smarthost.example:0", false},
		{"smarthost.example:65536", false},
		{"smarthost.example:99999999999999999999", false},
		{"smarthost.example:-25", false},
		{"smarthost.example:+25", false},
		{"2001:db8::7:25", false},
		{"smart host:25", false},
	} {
		if err := checkProbe(tc.probe); (err == nil) != tc.ok {
			t.Errorf("checkProbe(%q) = %v, want ok %v", tc.probe, err, tc.ok)
		}
	}

	// Loopback only: without the check, -check and the daemon would dial
	// these.
	for _, args := range [][]string{
		{"-check", "-probe", "nohostport"},
		{"-probe", "127.0.0.1:0", "-check"},
		{"-probe=127.0.0.1:smtp"},
	} {
		var out, errb bytes.Buffer
		done := make(chan int, 1)
		root := t.TempDir()
		go func() { done <- Main(root, args, &out, &errb) }()
		select {
		case code := <-done:
			if code != 100 || out.Len() != 0 || !strings.Contains(errb.String(), "qmail-linkwatch: -probe ") ||
				!strings.Contains(errb.String(), "usage: qmail-linkwatch") {
				t.Errorf("qmail-linkwatch %q: exit %d, stdout %q, stderr %q; want exit 100 and the usage", args, code, out.String(), errb.String())
			}
		case <-time.After(10 * time.Second):
			// Without the check the daemon runs until SIGTERM.
			t.Fatalf("qmail-linkwatch %q still running after 10s; want exit 100 at once", args)
		}
	}
}

// TestMeteredWithoutNmcli: -metered on a host without nmcli says that it
// can tell nothing (every link counts as not metered), at -check and at
// the daemon's start.
func TestMeteredWithoutNmcli(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	const warn = "qmail-linkwatch: warning: -metered asks NetworkManager's nmcli, which is not on PATH: every link counts as not metered\n"
	var out, errb bytes.Buffer
	Main(t.TempDir(), []string{"-check", "-metered"}, &out, &errb)
	if !strings.HasPrefix(errb.String(), warn) {
		t.Errorf("-check -metered: stderr %q, want it to start with %q", errb.String(), warn)
	}
	errb.Reset()
	Main(t.TempDir(), []string{"-check"}, &out, &errb)
	if strings.Contains(errb.String(), "nmcli") {
		t.Errorf("-check without -metered: stderr %q names nmcli", errb.String())
	}
}
