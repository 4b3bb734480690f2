package linkwatch

import (
	"bytes"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
