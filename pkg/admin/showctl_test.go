package admin

import (
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hqmail/hqmail/pkg/control"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/remote"
	"github.com/hqmail/hqmail/pkg/smtpd"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestShowctlGolden(t *testing.T) {
	ids := &qhome.IDs{Alias: qhome.User{UID: 7790, GID: 2108}, Qmaild: qhome.User{UID: 7791, GID: 2108},
		Qmaill: qhome.User{UID: 7792, GID: 2108}, Qmailp: qhome.User{UID: 7793, GID: 2108},
		Qmailq: qhome.User{UID: 7794, GID: 2107}, Qmailr: qhome.User{UID: 7795, GID: 2107},
		Qmails: qhome.User{UID: 7796, GID: 2107}, Qmail: 2107, Nofiles: 2108}
	tests := []struct {
		name  string
		files map[string]string
	}{
		{"empty", map[string]string{"etc/ids": qhome.SharedIDs(1000, 1000).Format(), "control/.keep": ""}},
		{"configured", map[string]string{
			"etc/ids":                   ids.Format(),
			"control/me":                "mx.example.org\n",
			"control/locals":            "example.org\nmx.example.org\n",
			"control/rcpthosts":         "# ours\nexample.org\n.example.org\n",
			"control/concurrencyremote": "600\n",
			"control/concurrencylocal":  "3 # three\n",
			"control/timeoutconnect":    "soon\n",
			"control/databytes":         "10000000  \n",
			"control/helohost":          "",
			"control/badmailfrom":       "",
			"control/holdremote":        "corp.example\n.corp.example\nnot a domain\n",
			"control/holdlocal":         "",
			"control/smtpauth":          "smart.example:u:secret\n",
			"control/morercpthosts":     "other.example\n",
			"control/morercpthosts.cdb": "",
			"control/startheld":         "",
			"control/linkwant":          "release\n",
			"control/linkwant.boot":     "0f3c7a52-1d4e-4b8a-9c61-2e7f80a5d913\n",
			"control/defaultdelivery":   "|/var/qmail/bin/dot-forward .forward\n./Maildir/\n",
			"control/mystery":           "?\n",
		}},
		// Saved with CRLF line endings: a warning below each entry whose
		// value (as qmail reads it) ends in a CR, and nowhere else: not
		// a number (only its digits count), a list whose reader trims
		// the CR (smtproutes, tlsroutes), a hold file (holdremote,
		// startheld), a comment line or a second line of a single-value
		// file.
		{"crlf", map[string]string{
			"etc/ids":                   qhome.SharedIDs(1000, 1000).Format(),
			"control/me":                "mx.example.org\r\n",
			"control/locals":            "example.org\r\nmx.example.org\r\n",
			"control/rcpthosts":         "example.org\r\n\r\n",
			"control/badmailfrom":       "# only the comment\r\nbad@example.net\n",
			"control/concurrencyremote": "600\r\n",
			"control/timeoutsmtpd":      "300\r\n",
			"control/smtproutes":        "example.net:relay.example:2525\r\n:smart.example\r\n",
			"control/tlsroutes":         "relay.example:require\r\n",
			"control/helohost":          "helo.example \r\n",
			"control/smtpgreeting":      "greeting.example\nnot read\r\n",
			"control/holdremote":        "corp.example\r\n",
			"control/startheld":         "vpn.example\r\n.corp.example\r\n",
			"control/defaultdelivery":   "./Maildir/\r\n",
			"control/smtpauth":          "smart.example:u:secret\r\n",
			"control/mystery":           "?\r\n",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			writeFiles(t, root, tc.files)
			// morercpthosts.cdb older than its source gives the Oops line.
			old := time.Unix(1700000000, 0)
			os.Chtimes(filepath.Join(root, "control", "morercpthosts.cdb"), old, old)
			os.Chmod(filepath.Join(root, "control", "smtpauth"), 0600)
			var out bytes.Buffer
			if code := ShowctlMain(root, &out, io.Discard); code != 0 {
				t.Fatalf("exit %d:\n%s", code, out.String())
			}
			got := strings.ReplaceAll(out.String(), root, "ROOT")
			// A CR in a value is printed as it is; the golden file shows
			// it as <CR>.
			got = strings.ReplaceAll(got, "\r", "<CR>")
			golden(t, filepath.Join("testdata", "showctl-"+tc.name+".golden"), []byte(got))
			if strings.Contains(got, "secret") {
				t.Error("smtpauth contents shown")
			}
		})
	}
}

// TestShowctlStartHeld: control/startheld is shown as the hold it makes
// at start, read as holdremote is (pkg/ctl StartHeld): empty or without
// a domain, everything; else its domains, with a warning for each line
// that is no domain. It was shown as present or absent alone, described
// as "holdremote is created at start", which an existing holdremote no
// longer stops.
func TestShowctlStartHeld(t *testing.T) {
	const head = "startheld (qmail-start: hold of the remote channel (all, or a list of domains) made at start unless a network hook " +
		"released it since boot: holdremote made with its contents, or edited as qmailctl hold remote does; see qmail-start): "
	for _, tc := range []struct {
		name    string
		present bool
		data    string
		want    string
	}{
		{"absent", false, "", head + "(Default.) not held.\n"},
		{"empty", true, "", head + "held (all destinations).\n"},
		{"domains", true, "vpn.example\n.Corp.Example\n", head + "held for vpn.example .corp.example.\n"},
		{"star above domains", true, "*\nvpn.example\n", head + "held (all destinations).\n"},
		{"junk", true, "no such thing\nvpn.example\n", head + "held for vpn.example.\n" +
			"  warning: control/startheld line 1 is not a domain and holds nothing: \"no such thing\"\n"},
		{"only junk", true, "off\n", head + "held (all destinations).\n" +
			"  warning: control/startheld line 1 is not a domain: \"off\" (no domain is listed, so every destination is held)\n"},
	} {
		root := t.TempDir()
		files := map[string]string{"etc/ids": qhome.SharedIDs(1000, 1000).Format(), "control/.keep": ""}
		if tc.present {
			files["control/startheld"] = tc.data
		}
		writeFiles(t, root, files)
		var out bytes.Buffer
		if code := ShowctlMain(root, &out, io.Discard); code != 0 {
			t.Fatalf("%s: exit %d:\n%s", tc.name, code, out.String())
		}
		got := out.String()
		if i := strings.Index(got, "startheld ("); i < 0 {
			t.Errorf("%s: no startheld line:\n%s", tc.name, got)
		} else if got = got[i:]; !strings.HasPrefix(got, tc.want) || strings.HasPrefix(got[len(tc.want):], "  ") {
			t.Errorf("%s: got\n%s\nwant\n%s", tc.name, strings.SplitN(got, "timeoutconnect", 2)[0], tc.want)
		}
	}
}

func TestShowctlErrors(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"control/holdremote/x": ""})
	var out bytes.Buffer
	code := ShowctlMain(root, &out, io.Discard)
	if code != 111 || !strings.Contains(out.String(), "user ids: unknown (unable to read etc/ids: no such file or directory)") ||
		!strings.Contains(out.String(), "holdremote: unable to read: is a directory") {
		t.Errorf("exit %d:\n%s", code, out.String())
	}
}

func TestConcurrencyNote(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    uint64
		want string
	}{
		{"concurrencyremote", 0, " (no remote delivery starts)"},
		{"concurrencylocal", 0, " (no local delivery starts)"},
		{"concurrencylocal", 121, " (qmail-send uses 120, the most its spawner runs)"},
		{"concurrencyremote", 500, ""},
		{"databytes", 0, ""},
	} {
		if got := concurrencyNote(tc.name, tc.n); got != tc.want {
			t.Errorf("%s %d: %q, want %q", tc.name, tc.n, got, tc.want)
		}
	}
}

// TestControlValueKind: how the programs take each file's values, as
// qmail-install -check asks for it.
func TestControlValueKind(t *testing.T) {
	for _, tc := range []struct {
		name  string
		want  ValueKind
		known bool
	}{
		{"me", FirstLine, true},
		{"bouncehost", FirstLine, true},
		{"smtpgreeting", FirstLine, true},
		{"aliases", FirstLine, true},
		{"locals", ListLines, true},
		{"badmailfrom", ListLines, true},
		{"smtpauth", ListLines, true},
		{"smtproutes", TrimmedLines, true},
		{"tlsroutes", TrimmedLines, true},
		{"outgoingip", TrimmedLines, true},
		{"relayclients", TrimmedLines, true},
		{"databytes", Number, true},
		{"concurrencyremote", Number, true},
		{"holdremote", NoValues, true},
		{"startheld", NoValues, true},
		{"servercert.pem", NoValues, true},
		{"morercpthosts.cdb", NoValues, true},
		{"mystery", NoValues, false},
	} {
		if got, known := ControlValueKind(tc.name); got != tc.want || known != tc.known {
			t.Errorf("%s: %d %v, want %d %v", tc.name, got, known, tc.want, tc.known)
		}
	}
}

// TestTrimmedListsDropCR: the lists marked kListTrim (no CR warning, and
// TrimmedLines for qmail-install -check) come out the same from their
// readers when saved with CRLF line endings; each such file needs a case
// here.
func TestTrimmedListsDropCR(t *testing.T) {
	files := map[string]string{
		"smtproutes":   "example.net:relay.example:2525\n.example.org:[192.0.2.7]\n:smart.example\n",
		"tlsroutes":    "relay.example:require\n.example.org:none\n",
		"outgoingip":   "192.0.2.1\n2001:db8::1\n",
		"relayclients": "127.\n192.0.2.0/24\n2001:db8::5\n",
	}
	for _, cf := range controlFiles {
		if _, ok := files[cf.name]; cf.kind == kListTrim && !ok {
			t.Errorf("%s: marked kListTrim, with no case here", cf.name)
		}
	}
	// what the readers make of the files of one tree.
	read := func(crlf bool) string {
		root := t.TempDir()
		all := map[string]string{"control/me": "mx.example\n"}
		for n, c := range files {
			if crlf {
				c = strings.ReplaceAll(c, "\n", "\r\n")
			}
			all["control/"+n] = c
		}
		writeFiles(t, root, all)
		c, err := remote.LoadConfig(root)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, h := range []string{"example.net", "a.example.org", "other.example", "relay.example"} {
			r, ok := c.Routes.LookupRoute(h)
			fmt.Fprintf(&b, "route %s: %q %d %v; tls %s\n", h, r.Relay, r.Port, ok, c.TLSRoutes.TLSPolicy(h, false))
		}
		fmt.Fprintf(&b, "outgoingip %v\n", c.OutgoingIP)
		rules, _, err := control.Open(root).ReadList("relayclients")
		if err != nil {
			t.Fatal(err)
		}
		for _, ip := range []string{"127.0.0.9", "192.0.2.200", "2001:db8::5", "198.51.100.1"} {
			fmt.Fprintf(&b, "relay %s: %v\n", ip, smtpd.RelayMatch(rules, netip.MustParseAddr(ip)))
		}
		return b.String()
	}
	lf, crlf := read(false), read(true)
	if lf != crlf {
		t.Errorf("read with CRLF:\n%s\nwith LF:\n%s", crlf, lf)
	}
	for _, want := range []string{`route example.net: "relay.example" 2525 true; tls try`, `route relay.example: "smart.example" 25 true; tls require`, "relay 192.0.2.200: true"} {
		if !strings.Contains(lf, want) {
			t.Errorf("no %q in:\n%s", want, lf)
		}
	}
}

// TestShowctlNumbersAsRead: a number file shows the value its reader
// gets. Files read with control.ReadInt count anything beyond 2^31-1 as
// that; databytes and timeoutsmtpd are read with control.ReadUint, up to
// 2^62 (qmail-smtpd advertises SIZE 99999999999 for such a databytes).
// Before, qmail-showctl printed what the file says (99999999999 for
// timeoutremote, which qmail-remote takes as 2147483647). The values shown
// are checked against qmail-remote's and qmail-smtpd's own config
// readers.
func TestShowctlNumbersAsRead(t *testing.T) {
	const big = "99999999999"
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  []string // lines of the report
		// what the programs' readers make of the files
		timeoutRemote, timeoutConnect time.Duration
		databytes                     int64
		timeoutSmtpd                  time.Duration
	}{
		{
			name: "beyond 2^31-1",
			files: map[string]string{
				"timeoutremote":     big + "\n",
				"timeoutconnect":    "0\n",
				"databytes":         big + "\n",
				"timeoutsmtpd":      big + "\n",
				"queuelifetime":     big + " # long\n",
				"concurrencyremote": big + "\n",
			},
			want: []string{
				`timeoutremote (qmail-remote: seconds to wait for each SMTP read or write): 2147483647 (from "99999999999": larger numbers count as 2147483647).`,
				`timeoutconnect (qmail-remote: seconds to wait for a connection): 0 (taken as 1).`,
				`databytes (qmail-smtpd: largest message accepted, in bytes; 0 is no limit): 99999999999.`,
				`timeoutsmtpd (qmail-smtpd: seconds to wait for each client read and each reply write): 99999999999 (qmail-smtpd waits at most a year, 31536000).`,
				`queuelifetime (qmail-send: seconds a message may stay in the queue (time all of its channel was held excluded)): 2147483647 (from "99999999999 # long": the leading digits count; larger numbers count as 2147483647).`,
				`concurrencyremote (qmail-send: simultaneous remote deliveries (at most 500)): 2147483647 (from "99999999999": larger numbers count as 2147483647) (qmail-send uses 500, the most its spawner runs).`,
			},
			timeoutRemote: (1<<31 - 1) * time.Second, timeoutConnect: time.Second,
			databytes: 99999999999, timeoutSmtpd: 365 * 24 * time.Hour,
		},
		{
			name: "beyond 2^62",
			files: map[string]string{
				"timeoutremote":  "2147483647\n",
				"timeoutconnect": "2147483648\n",
				"databytes":      "99999999999999999999999\n",
				"timeoutsmtpd":   "4611686018427387904\n",
			},
			want: []string{
				`timeoutremote (qmail-remote: seconds to wait for each SMTP read or write): 2147483647.`,
				`timeoutconnect (qmail-remote: seconds to wait for a connection): 2147483647 (from "2147483648": larger numbers count as 2147483647).`,
				`databytes (qmail-smtpd: largest message accepted, in bytes; 0 is no limit): 4611686018427387904 (from "99999999999999999999999": larger numbers count as 4611686018427387904).`,
				`timeoutsmtpd (qmail-smtpd: seconds to wait for each client read and each reply write): 4611686018427387904 (qmail-smtpd waits at most a year, 31536000).`,
			},
			timeoutRemote: (1<<31 - 1) * time.Second, timeoutConnect: (1<<31 - 1) * time.Second,
			databytes: 1 << 62, timeoutSmtpd: 365 * 24 * time.Hour,
		},
		{
			name: "small",
			files: map[string]string{
				"timeoutremote":  "007\n",
				"timeoutconnect": "30s\n",
				"databytes":      "1000\n",
				"timeoutsmtpd":   "0\n",
			},
			want: []string{
				`timeoutremote (qmail-remote: seconds to wait for each SMTP read or write): 007.`,
				`timeoutconnect (qmail-remote: seconds to wait for a connection): 30 (from "30s": the leading digits count).`,
				`databytes (qmail-smtpd: largest message accepted, in bytes; 0 is no limit): 1000.`,
				`timeoutsmtpd (qmail-smtpd: seconds to wait for each client read and each reply write): 0 (taken as 1).`,
			},
			timeoutRemote: 7 * time.Second, timeoutConnect: 30 * time.Second,
			databytes: 1000, timeoutSmtpd: time.Second,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			files := map[string]string{"etc/ids": qhome.SharedIDs(1000, 1000).Format(), "control/me": "mx.example\n"}
			for n, c := range tc.files {
				files["control/"+n] = c
			}
			writeFiles(t, root, files)
			var out bytes.Buffer
			if code := ShowctlMain(root, &out, io.Discard); code != 0 {
				t.Fatalf("exit %d:\n%s", code, out.String())
			}
			lines := strings.Split(out.String(), "\n")
			for _, want := range tc.want {
				found := false
				for _, l := range lines {
					found = found || l == want
				}
				if !found {
					t.Errorf("no line\n%s\nin\n%s", want, out.String())
				}
			}
			rc, err := remote.LoadConfig(root)
			if err != nil {
				t.Fatal(err)
			}
			if rc.TimeoutRemote != tc.timeoutRemote || rc.TimeoutConnect != tc.timeoutConnect {
				t.Errorf("qmail-remote reads timeoutremote %v, timeoutconnect %v; want %v, %v",
					rc.TimeoutRemote, rc.TimeoutConnect, tc.timeoutRemote, tc.timeoutConnect)
			}
			sc, _, err := smtpd.LoadConfig(root, func(string) (string, bool) { return "", false })
			if err != nil {
				t.Fatal(err)
			}
			if sc.Databytes != tc.databytes || sc.Timeout != tc.timeoutSmtpd {
				t.Errorf("qmail-smtpd reads databytes %d, timeoutsmtpd %v; want %d, %v",
					sc.Databytes, sc.Timeout, tc.databytes, tc.timeoutSmtpd)
			}
		})
	}
}

// TestNumberReaders: each number file is shown as read with the reader
// its program uses (kInt: control.ReadInt, kUint: control.ReadUint): the
// value shown for a number far beyond 2^62 is what that reader returns.
func TestNumberReaders(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{}
	for _, cf := range controlFiles {
		if cf.kind == kInt || cf.kind == kUint {
			files["control/"+cf.name] = "99999999999999999999999\n"
		}
	}
	writeFiles(t, root, files)
	d := control.Open(root)
	uints := map[string]bool{"databytes": true, "timeoutsmtpd": true}
	for _, cf := range controlFiles {
		if cf.kind != kInt && cf.kind != kUint {
			continue
		}
		if (cf.kind == kUint) != uints[cf.name] {
			t.Errorf("%s: kind %d; its program reads it with control.ReadUint: %v", cf.name, cf.kind, uints[cf.name])
		}
		var want uint64
		if cf.kind == kUint {
			want, _ = d.ReadUint(cf.name, 0)
		} else {
			n, _ := d.ReadInt(cf.name, 0)
			want = uint64(n)
		}
		if got, _, _ := readNumber("99999999999999999999999", cf.kind); got != want {
			t.Errorf("%s: shown as %d, its reader gets %d", cf.name, got, want)
		}
	}
}

// TestShowctlOutgoingIP: a control/outgoingip line that is no IP address
// is named with a warning (qmail-remote defers every delivery over it),
// and so is each line after the first of its family (qmail-remote ignores
// it); the report showed the lines without a word. qmail-remote's own
// reader is asked what it makes of each file.
func TestShowctlOutgoingIP(t *testing.T) {
	for _, tc := range []struct {
		file    string
		bad     []string // lines warned as no address
		ignored []string // lines warned as ignored
	}{
		{file: "192.0.2.1\n[2001:db8::1]\n"},
		{file: "192.0.2.1\nsmart.example\n", bad: []string{"smart.example"}},
		{file: "192.0.2.1:25\n", bad: []string{"192.0.2.1:25"}},
		{file: "192.0.2.1\n192.0.2.2\n2001:db8::1\n[IPv6:2001:db8::2]\n", ignored: []string{"192.0.2.2", "[IPv6:2001:db8::2]"}},
	} {
		root := t.TempDir()
		writeFiles(t, root, map[string]string{"control/me": "mx.example\n", "control/outgoingip": tc.file})
		var out bytes.Buffer
		ShowctlMain(root, &out, io.Discard)
		report := out.String()
		var warned []string
		for _, l := range strings.Split(report, "\n") {
			if strings.Contains(l, "warning:") && (strings.Contains(l, "IP address") || strings.Contains(l, "is ignored")) {
				warned = append(warned, l)
			}
		}
		if len(warned) != len(tc.bad)+len(tc.ignored) {
			t.Errorf("%q: warnings %q, want %d", tc.file, warned, len(tc.bad)+len(tc.ignored))
		}
		for _, b := range tc.bad {
			want := fmt.Sprintf("  warning: %q is not an IP address: qmail-remote defers every delivery", b)
			if !strings.Contains(report, want) {
				t.Errorf("%q: no %q in:\n%s", tc.file, want, report)
			}
		}
		for _, i := range tc.ignored {
			want := "  warning: " + i + " is ignored: only the first address of each family is used"
			if !strings.Contains(report, want) {
				t.Errorf("%q: no %q in:\n%s", tc.file, want, report)
			}
		}
		c, err := remote.LoadConfig(root)
		if (err != nil) != (len(tc.bad) > 0) {
			t.Errorf("%q: qmail-remote's reader: %v, showctl warned of %q", tc.file, err, tc.bad)
		}
		if err == nil && len(c.OutgoingIP)+len(tc.ignored) != strings.Count(tc.file, "\n") {
			t.Errorf("%q: qmail-remote uses %v, showctl warned %q ignored", tc.file, c.OutgoingIP, tc.ignored)
		}
	}
}

// TestShowctlEmptyDoublebounceto: an empty doublebounceto is not shown
// as an empty user: qmail-send discards double bounces then, and
// qmail-showctl says so; bouncefrom, whose empty value is only empty,
// is shown as such.
func TestShowctlEmptyDoublebounceto(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"control/doublebounceto": "\n", "control/bouncefrom": ""})
	var out bytes.Buffer
	ShowctlMain(root, &out, io.Discard)
	if !strings.Contains(out.String(), "doublebounceto (qmail-send: user receiving double bounces): (empty): double bounces are discarded.\n") ||
		!strings.Contains(out.String(), "bouncefrom (qmail-send: user part of the bounce sender): (empty).\n") {
		t.Errorf("output:\n%s", out.String())
	}
}
