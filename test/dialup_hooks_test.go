package test

// The link hooks of scripts/ (pppd, NetworkManager dispatcher,
// networkd-dispatcher) driven with the arguments and environment their
// callers give, against a running qmail-send: each event leaves the hold
// state it should, forgets stale connection time-outs on release, and logs
// one line saying what it did (logger and nmcli are replaced by recording
// fakes on PATH). No namespaces needed: the hooks only hold and release.

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hqmail/hqmail/pkg/tcpto"
	"github.com/hqmail/hqmail/test/harness"
)

type hookStep struct {
	name    string
	script  string   // below scripts/
	args    []string // argv after the script
	env     []string // extra environment
	nm      string   // what the fake `nmcli networking connectivity` prints
	routes  string   // what the fake `ip route show default` prints
	routes6 string   // what the fake `ip -6 route show default` prints
	held    bool     // hold state afterwards
	log     string   // the line logged ("" = the hook does nothing)
}

func TestDialupHooks(t *testing.T) {
	tr := ctlTree(t)
	sys := tr.Start(t, "./Maildir/")
	fake := t.TempDir()
	logFile := filepath.Join(fake, "syslog")
	nmFile := filepath.Join(fake, "connectivity")
	routeFile := filepath.Join(fake, "routes")
	route6File := filepath.Join(fake, "routes6")
	for name, body := range map[string]string{
		"logger": fmt.Sprintf("#!/bin/sh\necho \"$*\" >>%s\n", logFile),
		"nmcli":  fmt.Sprintf("#!/bin/sh\n[ \"$*\" = 'networking connectivity' ] || exit 2\ncat %s\n", nmFile),
		"ip": fmt.Sprintf("#!/bin/sh\ncase \"$*\" in 'route show default') cat %s;; '-6 route show default') cat %s;; *) exit 2;; esac\n",
			routeFile, route6File),
	} {
		if err := os.WriteFile(filepath.Join(fake, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ppp := []string{"/dev/ttyS0", "115200", "10.0.0.1", "10.0.0.2", ""}
	steps := []hookStep{
		{name: "ppp up", script: "ppp/ip-up.d/hqmail", args: append([]string{"ppp0"}, ppp...),
			log: "-t hqmail-ppp -- link ppp0 up: remote delivery released"},
		{name: "ppp down", script: "ppp/ip-down.d/hqmail", args: append([]string{"ppp0"}, ppp...),
			held: true, log: "-t hqmail-ppp -- link ppp0 down: remote delivery held"},
		// Following the uplink only: a VPN's ppp1 going up or down is not it.
		{name: "ppp up of another interface than HQMAIL_IFACE", script: "ppp/ip-up.d/hqmail",
			args: append([]string{"ppp1"}, ppp...), env: []string{"HQMAIL_IFACE=ppp0"}, held: true},
		{name: "ppp up of HQMAIL_IFACE", script: "ppp/ip-up.d/hqmail", args: append([]string{"ppp0"}, ppp...),
			env: []string{"HQMAIL_IFACE=ppp0"}, log: "-t hqmail-ppp -- link ppp0 up: remote delivery released"},
		{name: "ppp down of another interface than HQMAIL_IFACE", script: "ppp/ip-down.d/hqmail",
			args: append([]string{"ppp1"}, ppp...), env: []string{"HQMAIL_IFACE=ppp0"}},
		{name: "ppp down again", script: "ppp/ip-down.d/hqmail", args: append([]string{"ppp0"}, ppp...),
			held: true, log: "-t hqmail-ppp -- link ppp0 down: remote delivery held"},
		{name: "nm up", script: "networkmanager/90-hqmail", args: []string{"wlan0", "up"}, nm: "full",
			log: "-t hqmail-nm -- wlan0 up: remote delivery released"},
		{name: "nm down, no connectivity left", script: "networkmanager/90-hqmail", args: []string{"wlan0", "down"}, nm: "none",
			held: true, log: "-t hqmail-nm -- wlan0 down: remote delivery held"},
		{name: "nm connectivity full", script: "networkmanager/90-hqmail", args: []string{"", "connectivity-change"},
			env: []string{"CONNECTIVITY_STATE=FULL"}, nm: "full",
			log: "-t hqmail-nm -- connectivity-change FULL: remote delivery released"},
		{name: "nm down, another link still has full connectivity", script: "networkmanager/90-hqmail",
			args: []string{"eth0", "down"}, nm: "full"},
		{name: "nm captive portal", script: "networkmanager/90-hqmail", args: []string{"", "connectivity-change"},
			env: []string{"CONNECTIVITY_STATE=PORTAL"}, nm: "portal",
			held: true, log: "-t hqmail-nm -- connectivity-change PORTAL: remote delivery held"},
		// A bridge or a container's link coming up while offline is not
		// connectivity: nothing is released.
		{name: "nm up of a device while NetworkManager says none", script: "networkmanager/90-hqmail",
			args: []string{"docker0", "up"}, nm: "none", held: true},
		{name: "nm up of another interface than HQMAIL_IFACE", script: "networkmanager/90-hqmail",
			args: []string{"eth0", "up"}, env: []string{"HQMAIL_IFACE=wwan0"}, nm: "full", held: true},
		{name: "nm connectivity full, following HQMAIL_IFACE: ignored", script: "networkmanager/90-hqmail",
			args: []string{"", "connectivity-change"}, env: []string{"HQMAIL_IFACE=wwan0", "CONNECTIVITY_STATE=FULL"},
			nm: "full", held: true},
		{name: "nm up of HQMAIL_IFACE", script: "networkmanager/90-hqmail",
			args: []string{"wwan0", "up"}, env: []string{"HQMAIL_IFACE=wwan0"}, nm: "full",
			log: "-t hqmail-nm -- wwan0 up: remote delivery released"},
		{name: "nm down of HQMAIL_IFACE, connectivity elsewhere", script: "networkmanager/90-hqmail",
			args: []string{"wwan0", "down"}, env: []string{"HQMAIL_IFACE=wwan0"}, nm: "full",
			held: true, log: "-t hqmail-nm -- wwan0 down: remote delivery held"},
		{name: "networkd routable", script: "networkd-dispatcher/routable.d/hqmail",
			env: []string{"IFACE=eth0", "STATE=routable"}, routes: eth0Default,
			log: "-t hqmail-networkd -- eth0 routable: remote delivery released"},
		{name: "networkd off", script: "networkd-dispatcher/off.d/hqmail",
			env: []string{"IFACE=eth0", "STATE=off"}, held: true,
			log: "-t hqmail-networkd -- eth0 off: remote delivery held"},
		{name: "networkd routable again", script: "networkd-dispatcher/routable.d/hqmail",
			env: []string{"IFACE=eth0", "STATE=routable"}, routes: eth0Default,
			log: "-t hqmail-networkd -- eth0 routable: remote delivery released"},
		{name: "networkd no-carrier, Wi-Fi still routes", script: "networkd-dispatcher/no-carrier.d/hqmail",
			env:    []string{"IFACE=eth0", "STATE=no-carrier"},
			routes: "default via 10.0.0.1 dev eth0 proto dhcp linkdown\ndefault via 192.168.1.1 dev wlan0 proto dhcp metric 600\n"},
		{name: "networkd no-carrier, only a linkdown route left", script: "networkd-dispatcher/no-carrier.d/hqmail",
			env: []string{"IFACE=eth0", "STATE=no-carrier"}, held: true,
			routes: "default via 10.0.0.1 dev eth0 proto dhcp linkdown\n",
			log:    "-t hqmail-networkd -- eth0 no-carrier: remote delivery held"},
		{name: "networkd wlan0 routable", script: "networkd-dispatcher/routable.d/hqmail",
			env:    []string{"IFACE=wlan0", "STATE=routable"},
			routes: "default via 10.0.0.1 dev eth0 proto dhcp linkdown\ndefault via 192.168.1.1 dev wlan0 proto dhcp metric 600 \n",
			log:    "-t hqmail-networkd -- wlan0 routable: remote delivery released"},
		{name: "networkd off, its own route still listed", script: "networkd-dispatcher/off.d/hqmail",
			env: []string{"IFACE=wlan0", "STATE=off"}, held: true,
			routes: "default via 192.168.1.1 dev wlan0 proto dhcp metric 600\n",
			log:    "-t hqmail-networkd -- wlan0 off: remote delivery held"},
		{name: "networkd no-carrier, no route", script: "networkd-dispatcher/no-carrier.d/hqmail",
			env: []string{"IFACE=eth0", "STATE=no-carrier"}, held: true,
			log: "-t hqmail-networkd -- eth0 no-carrier: remote delivery held"},
		// A bridge (or a container's veth) becoming routable is no uplink:
		// only an interface carrying a default route releases, and one
		// whose default route is linkdown does not.
		{name: "networkd routable of a bridge without a default route", script: "networkd-dispatcher/routable.d/hqmail",
			env: []string{"IFACE=br0", "STATE=routable"}, held: true,
			routes: "default via 10.0.0.1 dev eth0 proto dhcp linkdown \n", routes6: "default via fe80::1 dev wlan0 proto ra metric 1024 pref medium\n"},
		{name: "networkd routable, its default route linkdown", script: "networkd-dispatcher/routable.d/hqmail",
			env: []string{"IFACE=eth0", "STATE=routable"}, held: true,
			routes: "default via 10.0.0.1 dev eth0 proto dhcp linkdown \n"},
		{name: "networkd routable, an IPv6 default route only", script: "networkd-dispatcher/routable.d/hqmail",
			env: []string{"IFACE=eth0", "STATE=routable"}, routes6: "default via fe80::1 dev eth0 proto ra metric 1024 expires 1798sec pref medium\n",
			log: "-t hqmail-networkd -- eth0 routable: remote delivery released"},
		{name: "networkd off again", script: "networkd-dispatcher/off.d/hqmail",
			env: []string{"IFACE=eth0", "STATE=off"}, held: true,
			log: "-t hqmail-networkd -- eth0 off: remote delivery held"},
		// An interface name that looks like an option is logged as text.
		{name: "networkd routable of an interface named like an option", script: "networkd-dispatcher/routable.d/hqmail",
			env: []string{"IFACE=-i", "STATE=routable"}, routes: "default via 10.0.0.1 dev -i \n",
			log: "-t hqmail-networkd -- -i routable: remote delivery released"},
		// A multipath default: its header line names no device; only the
		// next hops count (here the other one is down too).
		{name: "networkd routable before multipath", script: "networkd-dispatcher/routable.d/hqmail",
			env:    []string{"IFACE=eth0", "STATE=routable"},
			routes: "default proto static metric 100 \n\tnexthop via 10.0.0.1 dev eth0 weight 1 \n\tnexthop via 10.1.0.1 dev eth1 weight 1 \n",
			log:    "-t hqmail-networkd -- eth0 routable: remote delivery released"},
		{name: "networkd off, multipath with the other hop down", script: "networkd-dispatcher/off.d/hqmail",
			env: []string{"IFACE=eth0", "STATE=off"}, held: true,
			routes: "default proto static metric 100 \n\tnexthop via 10.0.0.1 dev eth0 weight 1 \n\tnexthop via 10.1.0.1 dev eth1 weight 1 dead linkdown \n",
			log:    "-t hqmail-networkd -- eth0 off: remote delivery held"},
	}
	mx := net.ParseIP("192.0.2.25")
	tab := tcpto.Open(tr.Root)
	for _, st := range steps {
		// Stale time-outs before every release: the hook must clear them.
		seedTimeouts(t, tab, mx)
		if err := os.WriteFile(nmFile, []byte(st.nm+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(routeFile, []byte(st.routes), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(route6File, []byte(st.routes6), 0o644); err != nil {
			t.Fatal(err)
		}
		before, _ := os.ReadFile(logFile)
		cmd := exec.Command("/bin/sh", append([]string{scriptPath(t, st.script)}, st.args...)...)
		cmd.Env = append([]string{"PATH=" + fake + ":/usr/sbin:/usr/bin:/sbin:/bin", "QMAILHOME=" + tr.Root}, st.env...)
		out, err := cmd.CombinedOutput()
		if err != nil || len(out) != 0 {
			t.Fatalf("%s: %v, output %q", st.name, err, out)
		}
		var logged string
		if st.log != "" {
			if !harness.Eventually(30*time.Second, func() bool {
				b, _ := os.ReadFile(logFile)
				logged = strings.TrimPrefix(string(b), string(before))
				return logged != ""
			}) {
				t.Fatalf("%s: nothing logged within 30 s", st.name)
			}
		} else {
			// The hook returns at once; give a stray background job time
			// to show itself.
			time.Sleep(time.Second)
			b, _ := os.ReadFile(logFile)
			logged = strings.TrimPrefix(string(b), string(before))
		}
		if want := st.log; want != "" {
			want += "\n"
			if logged != want {
				t.Errorf("%s: logged %q, want %q", st.name, logged, want)
			}
		} else if logged != "" {
			t.Errorf("%s: logged %q, want nothing", st.name, logged)
		}
		if ok, state := holdAgrees(tr, sys); !ok || (sys.Status()["holdremote"] == "all") != st.held {
			t.Errorf("%s: want held=%v: %s", st.name, st.held, state)
		}
		if ready, _ := tab.Ready(mx); strings.Contains(st.log, "released") && !ready {
			t.Errorf("%s: released, but the stale time-outs in tcpto are still there", st.name)
		}
	}
	sys.Stop(t)

	// qmail-send stopped: the flag is still changed, and the log says so
	// (qmailctl's exit 3), not that the hook failed.
	before, _ := os.ReadFile(logFile)
	cmd := exec.Command("/bin/sh", append([]string{scriptPath(t, "ppp/ip-down.d/hqmail"), "ppp0"}, ppp...)...)
	cmd.Env = []string{"PATH=" + fake + ":/usr/sbin:/usr/bin:/sbin:/bin", "QMAILHOME=" + tr.Root}
	if out, err := cmd.CombinedOutput(); err != nil || len(out) != 0 {
		t.Fatalf("ip-down with qmail-send stopped: %v, output %q", err, out)
	}
	want := "-t hqmail-ppp -- link ppp0 down: remote delivery held; qmail-send is not running, its next start honours it\n"
	var logged string
	harness.Eventually(30*time.Second, func() bool {
		b, _ := os.ReadFile(logFile)
		logged = strings.TrimPrefix(string(b), string(before))
		return logged != ""
	})
	if logged != want {
		t.Errorf("ip-down with qmail-send stopped: logged %q, want %q", logged, want)
	}
	if _, err := os.Stat(tr.Path("control", "holdremote")); err != nil {
		t.Errorf("ip-down with qmail-send stopped: no flag: %v", err)
	}
}

// eth0Default is `ip route show default` with a default route through eth0.
const eth0Default = "default via 10.0.0.1 dev eth0 proto dhcp src 10.0.0.2 metric 100 \n"

// seedTimeouts records two connection time-outs of ip a few minutes apart,
// the last a minute ago: qmail-remote then skips ip for about an hour.
func seedTimeouts(t *testing.T, tab *tcpto.Table, ip net.IP) {
	t.Helper()
	for _, ago := range []time.Duration{210 * time.Second, 60 * time.Second} {
		at := time.Now().Add(-ago)
		tab.Now = func() time.Time { return at }
		_, present := tab.Ready(ip)
		tab.Result(ip, true, present)
	}
	tab.Now = nil
	if ready, _ := tab.Ready(ip); ready {
		t.Fatalf("seeding tcpto failed: %s still ready", ip)
	}
}

// TestDialupHooksFlap: a link that flaps fires down and up hooks back to
// back; each hook returns at once and its qmailctl runs in the background,
// so those runs overlap. Whatever order they get the control lock in, once
// they are done the state must be the last event's: released after a
// final up, held after a final down.
func TestDialupHooksFlap(t *testing.T) {
	tr := ctlTree(t)
	sys := tr.Start(t, "./Maildir/")
	fake := t.TempDir()
	logFile := filepath.Join(fake, "syslog")
	nmFile := filepath.Join(fake, "connectivity")
	for name, body := range map[string]string{
		"logger": fmt.Sprintf("#!/bin/sh\necho \"$*\" >>%s\n", logFile),
		"nmcli":  fmt.Sprintf("#!/bin/sh\ncat %s\n", nmFile),
		// eth0 carries the default route (routable releases) and no
		// other interface does (off holds).
		"ip": fmt.Sprintf("#!/bin/sh\n[ \"$*\" = 'route show default' ] && printf '%%s' '%s'\nexit 0\n", eth0Default),
	} {
		if err := os.WriteFile(filepath.Join(fake, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(nmFile, []byte("none\n"), 0o644)
	type hooks struct {
		name     string
		down, up []string // script below scripts/ and its argv
		env      []string
	}
	ppp := []string{"/dev/ttyS0", "115200", "10.0.0.1", "10.0.0.2", ""}
	for _, h := range []hooks{
		{"ppp", append([]string{"ppp/ip-down.d/hqmail", "ppp0"}, ppp...), append([]string{"ppp/ip-up.d/hqmail", "ppp0"}, ppp...), nil},
		{"nm", []string{"networkmanager/90-hqmail", "wlan0", "down"}, []string{"networkmanager/90-hqmail", "wlan0", "up"}, nil},
		{"networkd", []string{"networkd-dispatcher/off.d/hqmail"}, []string{"networkd-dispatcher/routable.d/hqmail"},
			[]string{"IFACE=eth0", "STATE=x"}},
	} {
		for _, final := range []string{"up", "down"} {
			os.Remove(logFile)
			events := 0
			run := func(argv []string) {
				cmd := exec.Command("/bin/sh", append([]string{scriptPath(t, argv[0])}, argv[1:]...)...)
				cmd.Env = append([]string{"PATH=" + fake + ":/usr/sbin:/usr/bin:/sbin:/bin", "QMAILHOME=" + tr.Root}, h.env...)
				if out, err := cmd.CombinedOutput(); err != nil || len(out) != 0 {
					t.Fatalf("%s %v: %v %q", h.name, argv, err, out)
				}
				events++
			}
			// NetworkManager says none after a down and full once the
			// link is up again (the dispatcher releases on up only then).
			down := func() { os.WriteFile(nmFile, []byte("none\n"), 0o644); run(h.down) }
			up := func() { os.WriteFile(nmFile, []byte("full\n"), 0o644); run(h.up) }
			for i := 0; i < 10; i++ {
				down()
				up()
			}
			if final == "down" {
				down()
			}
			// Wait for the background jobs: each logs at least once, and
			// the forked shells carry the script's path in their argv.
			if !harness.Eventually(dialBound, func() bool {
				b, _ := os.ReadFile(logFile)
				return strings.Count(string(b), "\n") >= events &&
					!running(scriptPath(t, h.down[0])) && !running(scriptPath(t, h.up[0]))
			}) {
				b, _ := os.ReadFile(logFile)
				t.Fatalf("%s: hook jobs still running %v after %d events; log:\n%s", h.name, dialBound, events, b)
			}
			ok, state := holdAgrees(tr, sys)
			held := sys.Status()["holdremote"] == "all"
			t.Logf("%s, %d events ending %s: %s", h.name, events, final, state)
			if !ok || held != (final == "down") {
				b, _ := os.ReadFile(logFile)
				t.Errorf("%s: after %d events ending with %s: %s; hook log:\n%s", h.name, events, final, state, b)
			}
		}
	}
	sys.Stop(t)
}

// running reports whether a process whose argv contains path is alive
// (observation only: /proc is read, nothing is signalled). The paths are
// the hooks of this checkout, which only this test runs.
func running(path string) bool {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), path) {
			return true
		}
	}
	return false
}

// TestDialupHookFailureSaysWhy: when qmailctl fails in a hook's background
// job, the logged line carries qmailctl's own message (it went to
// /dev/null and the line said only "failed (status 111)").
func TestDialupHookFailureSaysWhy(t *testing.T) {
	tr := ctlTree(t)
	fake := t.TempDir()
	logFile := filepath.Join(fake, "syslog")
	if err := os.WriteFile(filepath.Join(fake, "logger"), []byte(fmt.Sprintf("#!/bin/sh\necho \"$*\" >>%s\n", logFile)), 0o755); err != nil {
		t.Fatal(err)
	}
	// A flag that cannot be read: qmailctl exits 111 and says why.
	os.Remove(tr.Path("control", "holdremote"))
	if err := os.Mkdir(tr.Path("control", "holdremote"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", scriptPath(t, "ppp/ip-up.d/hqmail"), "ppp0", "/dev/ttyS0", "115200", "10.0.0.1", "10.0.0.2", "")
	cmd.Env = []string{"PATH=" + fake + ":/usr/sbin:/usr/bin:/sbin:/bin", "QMAILHOME=" + tr.Root}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hook: %v %s", err, out)
	}
	var line string
	if !harness.Eventually(dialBound, func() bool {
		b, _ := os.ReadFile(logFile)
		line = string(b)
		return strings.Contains(line, "\n")
	}) {
		t.Fatal("nothing logged")
	}
	if !strings.Contains(line, "link ppp0 up: qmailctl release remote failed (status 111): qmailctl: ") {
		t.Errorf("logged %q", line)
	}
}

// TestDialupHookPlantedLinks: the hooks run as root and record the wanted
// state in control/linkwant (in queue/lock, qmailq's, before: whoever
// acted as qmailq could plant links there). Symbolic links left in
// control/ before the event: linkwant.PID for the pid the hook will have
// (here planted by a wrapper that then execs the hook, keeping its pid),
// linkwant.tmp, and linkwant itself, each pointing to a root-only file.
// No hook writes through them: the root file keeps its contents, linkwant
// ends up a regular file saying what the event wants, and the background
// job still applies it (qmail-send is stopped: the flag changes and the
// log says the next start honours it).
func TestDialupHookPlantedLinks(t *testing.T) {
	tr := ctlTree(t)
	fake := t.TempDir()
	logFile := filepath.Join(fake, "syslog")
	nmFile := filepath.Join(fake, "connectivity")
	for name, body := range map[string]string{
		"logger": fmt.Sprintf("#!/bin/sh\necho \"$*\" >>%s\n", logFile),
		"nmcli":  fmt.Sprintf("#!/bin/sh\ncat %s\n", nmFile),
		"ip":     fmt.Sprintf("#!/bin/sh\n[ \"$*\" = 'route show default' ] && printf '%%s' '%s'\nexit 0\n", eth0Default),
	} {
		if err := os.WriteFile(filepath.Join(fake, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	secret := t.TempDir()
	const precious = "root-only contents\n"
	targets := []string{filepath.Join(secret, "pid-file"), filepath.Join(secret, "tmp-file"), filepath.Join(secret, "want-file")}
	for _, p := range targets {
		if err := os.WriteFile(p, []byte(precious), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	dir := tr.Path("control")
	ppp := []string{"/dev/ttyS0", "115200", "10.0.0.1", "10.0.0.2", ""}
	for _, h := range []struct {
		name, script string
		args, env    []string
		nm, want     string
		log          string
	}{
		{"ppp up", "ppp/ip-up.d/hqmail", append([]string{"ppp0"}, ppp...), nil, "", "release",
			"-t hqmail-ppp -- link ppp0 up: remote delivery released"},
		{"ppp down", "ppp/ip-down.d/hqmail", append([]string{"ppp0"}, ppp...), nil, "", "hold",
			"-t hqmail-ppp -- link ppp0 down: remote delivery held"},
		{"nm up", "networkmanager/90-hqmail", []string{"wlan0", "up"}, nil, "full", "release",
			"-t hqmail-nm -- wlan0 up: remote delivery released"},
		{"nm down", "networkmanager/90-hqmail", []string{"wlan0", "down"}, nil, "none", "hold",
			"-t hqmail-nm -- wlan0 down: remote delivery held"},
		{"networkd routable", "networkd-dispatcher/routable.d/hqmail", nil, []string{"IFACE=eth0", "STATE=routable"}, "", "release",
			"-t hqmail-networkd -- eth0 routable: remote delivery released"},
		{"networkd off", "networkd-dispatcher/off.d/hqmail", nil, []string{"IFACE=eth0", "STATE=off"}, "", "hold",
			"-t hqmail-networkd -- eth0 off: remote delivery held"},
		{"networkd no-carrier", "networkd-dispatcher/no-carrier.d/hqmail", nil, []string{"IFACE=eth0", "STATE=no-carrier"}, "", "hold",
			"-t hqmail-networkd -- eth0 no-carrier: remote delivery held"},
	} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "linkwant") {
				os.Remove(filepath.Join(dir, e.Name()))
			}
		}
		for i, name := range []string{"linkwant.tmp", "linkwant"} {
			if err := os.Symlink(targets[i+1], filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
		}
		os.WriteFile(nmFile, []byte(h.nm+"\n"), 0o644)
		os.Remove(logFile)
		// The wrapper plants linkwant.$$ and execs the hook: same pid.
		cmd := exec.Command("/bin/sh", append([]string{"-c", `ln -s "$TARGET" "$QMAILHOME/control/linkwant.$$" && exec /bin/sh "$@"`,
			"sh", scriptPath(t, h.script)}, h.args...)...)
		cmd.Env = append([]string{"PATH=" + fake + ":/usr/sbin:/usr/bin:/sbin:/bin", "QMAILHOME=" + tr.Root, "TARGET=" + targets[0]}, h.env...)
		if out, err := cmd.CombinedOutput(); err != nil || len(out) != 0 {
			t.Fatalf("%s: %v, output %q", h.name, err, out)
		}
		var logged string
		if !harness.Eventually(dialBound, func() bool {
			b, _ := os.ReadFile(logFile)
			logged = string(b)
			return strings.Contains(logged, "\n") && !running(scriptPath(t, h.script))
		}) {
			t.Fatalf("%s: nothing logged, or the job still runs, after %v", h.name, dialBound)
		}
		if want := h.log + "; qmail-send is not running, its next start honours it\n"; logged != want {
			t.Errorf("%s: logged %q, want %q", h.name, logged, want)
		}
		for _, p := range targets {
			if b, err := os.ReadFile(p); err != nil || string(b) != precious {
				t.Errorf("%s: %s written through a planted link: %q, %v", h.name, filepath.Base(p), b, err)
			}
		}
		var mode os.FileMode
		fi, err := os.Lstat(filepath.Join(dir, "linkwant"))
		if err == nil {
			mode = fi.Mode()
		}
		b, _ := os.ReadFile(filepath.Join(dir, "linkwant"))
		if !mode.IsRegular() || string(b) != h.want+"\n" {
			t.Errorf("%s: linkwant (mode %v, %v) says %q, want a regular file saying %s", h.name, mode, err, b, h.want)
		}
		if _, err := os.Stat(tr.Path("control", "holdremote")); (err == nil) != (h.want == "hold") {
			t.Errorf("%s: holdremote present %v, want %v", h.name, err == nil, h.want == "hold")
		}
	}
}

// TestDialupHookReplayAsQmailq: queue/lock is qmailq's, and qmailq may
// rename any file in it, root's included. It saved a release that root's
// qmailctl linkwant had recorded there (with its linkwant.boot naming
// this boot) and, once the next ip-down had recorded and applied its
// hold, renamed it back: linkwant apply released remote delivery, and
// qmailctl boot said a network hook had released it since the machine
// booted (QA rtoday6). linkwant is in control/ now, root's, and nothing
// in queue/lock is read: a release qmailq puts back there is nothing.
// pkg/ctl TestLinkWantReplay does the same without root.
func TestDialupHookReplayAsQmailq(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: qmailq renames root's files in its queue/lock")
	}
	tr := ctlTree(t)
	tr.RemoveControl("holdremote")
	ids := tr.IDs()
	lock := tr.Path("queue", "lock")
	asQmailq := func(from, to string) {
		t.Helper()
		cmd := exec.Command("/bin/mv", "-f", filepath.Join(lock, from), filepath.Join(lock, to))
		cmd.SysProcAttr = credential(ids.Qmailq.UID, ids.Qmailq.GID)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mv %s %s as qmailq: %v, %q", from, to, err, out)
		}
	}
	if out, code := ctl(t, tr, "linkwant", "release"); code != 0 {
		t.Fatalf("linkwant release: exit %d, %q", code, out)
	}
	// The release of this boot that root's qmailctl wrote in queue/lock:
	// there before this fix, and left by an older qmailctl in a tree
	// upgraded since.
	if _, err := os.Lstat(filepath.Join(lock, "linkwant")); err != nil {
		id, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
		if err != nil {
			t.Skipf("no boot id: %v", err)
		}
		for name, s := range map[string]string{"linkwant": "release\n", "linkwant.boot": string(id)} {
			if err := os.WriteFile(filepath.Join(lock, name), []byte(s), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	asQmailq("linkwant", ".saved")
	asQmailq("linkwant.boot", ".savedb")
	// The ip-down: recorded, applied (qmail-send is stopped: exit 3,
	// the flag is set), recorded again by the next ip-down.
	for _, args := range [][]string{{"linkwant", "hold"}, {"linkwant", "apply", "nowait"}, {"linkwant", "hold"}} {
		if out, code := ctl(t, tr, args...); code != 0 && code != 3 {
			t.Fatalf("%q: exit %d, %q", args, code, out)
		}
	}
	asQmailq(".saved", "linkwant")
	asQmailq(".savedb", "linkwant.boot")
	if out, _ := ctl(t, tr, "linkwant", "apply", "nowait"); !strings.HasPrefix(out, "hold\n") {
		t.Errorf("apply after qmailq's replay: %q, want hold applied", out)
	}
	if b, err := os.ReadFile(tr.Path("control", "holdremote")); err != nil || string(b) != "*\n" {
		t.Errorf("holdremote after qmailq's replay: %q, %v; want the ip-down's hold", b, err)
	}
	out, _ := ctl(t, tr, "boot")
	if strings.Contains(out, "released it since the machine booted") {
		t.Errorf("qmailctl boot after qmailq's replay: %q", out)
	}
	if b, err := os.ReadFile(tr.Path("control", "holdremote")); err != nil || string(b) != "*\n" {
		t.Errorf("holdremote after boot: %q, %v; want everything held", b, err)
	}
}
