package admin

import (
	"bytes"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/pkg/cdb"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/remote"
	"github.com/hqmail/hqmail/pkg/smtpd"
)

// TestSmtproutesExtras: a login written into smtproutes the way qmail's
// AUTH patches read it (after the port, or after the relay without one)
// is found, by its line number in the file, with the line shown only up
// to the port; what qmail-remote makes of the shown part is what it
// makes of the whole line, so the text cut off is only what it ignores.
func TestSmtproutesExtras(t *testing.T) {
	for _, tc := range []struct {
		line  string
		shown string // "" when the line has nothing after its port
		kind  int
	}{
		{line: ":smtp.provider.test:587"},
		{line: ":smtp.provider.test"},
		{line: "example.net:relay.example:2525\r"},
		{line: "[192.0.2.1]:[192.0.2.2]:26"},
		{line: "[IPv6:2001:db8::1]:relay.example"},
		{line: "example.net:"},
		{line: "no route at all"},
		{":smtp.provider.test:587 me@provider.test s3cret:pw", ":smtp.provider.test:587", RouteAfterPort},
		{":smtp.provider.test:587:me@provider.test:s3cret", ":smtp.provider.test:587", RouteAfterPort},
		{":smtp.provider.test:587|me|s3cret", ":smtp.provider.test:587", RouteAfterPort},
		{":smtp.provider.test:587\tme s3cret\r", ":smtp.provider.test:587", RouteAfterPort},
		{":smtp.provider.test:me s3cret", ":smtp.provider.test:", RouteNoPort},
		{"[192.0.2.1]:[192.0.2.2]:465 me s3cret", "[192.0.2.1]:[192.0.2.2]:465", RouteAfterPort},
		{"[192.0.2.1]:[192.0.2.2] me s3cret", "[192.0.2.1]:[192.0.2.2]", RouteNoPort},
		{":smtp.provider.test me s3cret", ":smtp.provider.test", RouteInName},
		{": smtp.provider.test me s3cret", ": smtp.provider.test", RouteInName},
	} {
		file := "# routes\n\n" + tc.line + "\n"
		got := SmtproutesExtras([]byte(file))
		if tc.shown == "" {
			if len(got) != 0 {
				t.Errorf("%q: %+v, want nothing", tc.line, got)
			}
			if s := shownRoutes([]byte(file)); !slices.Equal(s, []string{tc.line}) {
				t.Errorf("%q shown as %q", tc.line, s)
			}
			continue
		}
		want := []RouteExtra{{Line: 3, Shown: tc.shown, Kind: tc.kind}}
		if !slices.Equal(got, want) {
			t.Errorf("%q: %+v, want %+v", tc.line, got, want)
			continue
		}
		s := shownRoutes([]byte(file))
		if len(s) != 1 || !strings.HasPrefix(s[0], tc.shown+" [text after the ") || strings.Contains(s[0], "s3cret") {
			t.Errorf("%q shown as %q", tc.line, s)
		}
		if tc.kind == RouteInName {
			continue // qmail-remote takes the rest for the name
		}
		// qmail-remote's reading of the whole line is that of the part
		// shown: the rest is ignored.
		whole, cut := remote.ParseTable([]string{tc.line}), remote.ParseTable([]string{tc.shown})
		if !maps(whole, cut) {
			t.Errorf("%q: qmail-remote reads %v, the shown part %v", tc.line, whole, cut)
		}
		for k := range whole {
			if remote.ParseRoute(whole[k]) != remote.ParseRoute(cut[k]) {
				t.Errorf("%q: route %+v, of the shown part %+v", tc.line, remote.ParseRoute(whole[k]), remote.ParseRoute(cut[k]))
			}
		}
	}
}

// maps reports whether a and b have the same keys.
func maps(a, b remote.Table) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			return false
		}
	}
	return true
}

// TestShowctlSmtproutesLogin: qmail-showctl never prints the text after
// an smtproutes port (a password from a world-readable file), and warns
// of each such line by its number.
func TestShowctlSmtproutesLogin(t *testing.T) {
	for _, shared := range []bool{false, true} {
		root := t.TempDir()
		files := map[string]string{
			"control/me":         "laptop.example\n",
			"control/smtproutes": "# the provider\nexample.net:relay.example:2525\n\n:smtp.provider.test:587 me@provider.test s3cret:pw\n",
		}
		owner := "owner qmailr"
		if shared {
			files["etc/ids"] = qhome.SharedIDs(1000, 1000).Format()
			owner = "owned by the tree's user"
		}
		writeFiles(t, root, files)
		var out bytes.Buffer
		ShowctlMain(root, &out, io.Discard)
		got := out.String()
		if strings.Contains(got, "s3cret") || strings.Contains(got, "me@provider.test") {
			t.Errorf("the login is shown:\n%s", got)
		}
		for _, want := range []string{
			"\n  example.net:relay.example:2525\n",
			"\n  :smtp.provider.test:587 [text after the port not shown]\n",
			"\n  warning: control/smtproutes line 4: text after the port is ignored; a login belongs in control/smtpauth (mode 0600, " + owner + ")\n",
		} {
			if !strings.Contains(got, want) {
				t.Errorf("shared %v: no %q in:\n%s", shared, want, got)
			}
		}
		if n := strings.Count(got, "control/smtproutes line"); n != 1 {
			t.Errorf("%d warnings:\n%s", n, got)
		}
	}
}

// TestShowctlRelayDefault: without control/relayclients, showctl says
// that loopback clients relay, and anything a proxy on this host passes
// on with them.
func TestShowctlRelayDefault(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"control/me": "mx.example\n"})
	var out bytes.Buffer
	ShowctlMain(root, &out, io.Discard)
	want := "relayclients (qmail-smtpd -listen or -r: clients allowed to relay): (Default.) 127.0.0.1 and ::1: " +
		"clients at this host's loopback addresses relay, and so does every client a proxy or port forwarder on this host passes on"
	if !strings.Contains(out.String(), want) {
		t.Errorf("no %q in:\n%s", want, out.String())
	}
	writeFiles(t, root, map[string]string{"control/relayclients": ""})
	out.Reset()
	ShowctlMain(root, &out, io.Discard)
	if !strings.Contains(out.String(), "relayclients (qmail-smtpd -listen or -r: clients allowed to relay): (empty list)\n") {
		t.Errorf("empty relayclients:\n%s", out.String())
	}
}

// TestShowctlPercentRelay: a percenthack domain that qmail-smtpd accepts
// mail for (rcpthosts, morercpthosts, its cdb; the domain or a .suffix;
// case and IDN spelling folded, as qmail-smtpd compares) is warned of;
// one it refuses is not. Each warning agrees with qmail-smtpd's own rule.
func TestShowctlPercentRelay(t *testing.T) {
	for _, tc := range []struct {
		ph, rcpthosts, more, cdbKey string
		warned                      string // the file named, "" for none
	}{
		{ph: "Example.ORG", rcpthosts: "example.org", warned: "control/rcpthosts (example.org)"},
		{ph: "sub.example.org", rcpthosts: ".example.org", warned: "control/rcpthosts (.example.org)"},
		{ph: "bücher.example", rcpthosts: "xn--bcher-kva.example", warned: "control/rcpthosts (xn--bcher-kva.example)"},
		{ph: "xn--bcher-kva.example", rcpthosts: "BÜCHER.example", warned: "control/rcpthosts (BÜCHER.example)"},
		{ph: "other.example", rcpthosts: "example.org", more: "Other.Example", warned: "control/morercpthosts (Other.Example)"},
		{ph: "other.example", rcpthosts: "example.org", cdbKey: "other.example", warned: "control/morercpthosts.cdb (other.example)"},
		{ph: "old.example", rcpthosts: "example.org"},
		{ph: "example.org", rcpthosts: "sub.example.org"},
		{ph: "sub.example.org", rcpthosts: "example.org"},
		{ph: "gw.example"}, // no rcpthosts: every domain accepted, which its own line says
	} {
		root := t.TempDir()
		files := map[string]string{"control/me": "mx.example\n", "control/percenthack": tc.ph + "\n"}
		if tc.rcpthosts != "" {
			files["control/rcpthosts"] = tc.rcpthosts + "\n"
		}
		if tc.more != "" {
			files["control/morercpthosts"] = tc.more + "\n"
		}
		writeFiles(t, root, files)
		morePath := filepath.Join(root, "control", "morercpthosts.cdb")
		if tc.cdbKey != "" {
			if err := cdb.WriteFile(morePath, 0o644, []cdb.Record{{Key: []byte(tc.cdbKey), Data: []byte{}}}); err != nil {
				t.Fatal(err)
			}
		}
		var out bytes.Buffer
		ShowctlMain(root, &out, io.Discard)
		got := out.String()
		warning := "  warning: " + tc.ph + " is also accepted by "
		if tc.warned == "" {
			if strings.Contains(got, "is also accepted by") {
				t.Errorf("%+v: warned:\n%s", tc, got)
			}
		} else if want := warning + tc.warned + ": qmail-smtpd takes user%outside@" + tc.ph + " from anyone"; !strings.Contains(got, want) {
			t.Errorf("%+v: no %q in:\n%s", tc, want, got)
		}
		if tc.rcpthosts == "" {
			continue
		}
		// qmail-smtpd's own rule (morercpthosts as qmail-newmrh compiles it).
		if tc.more != "" {
			if err := cdb.WriteFile(morePath, 0o644, MoreRcptHosts([]byte(tc.more+"\n"))); err != nil {
				t.Fatal(err)
			}
		}
		ok, err := smtpd.NewRcptHosts([]string{tc.rcpthosts}, morePath).Allowed("victim%outside.example@" + tc.ph)
		if err != nil || ok != (tc.warned != "") {
			t.Errorf("%+v: qmail-smtpd accepts: %v %v", tc, ok, err)
		}
	}
	// Several domains: each warned of on its own line.
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"control/me": "mx.example\n", "control/percenthack": "a.example\nb.example\nc.example\n",
		"control/rcpthosts": "a.example\nc.example\n"})
	var out bytes.Buffer
	ShowctlMain(root, &out, io.Discard)
	if n := strings.Count(out.String(), "is also accepted by control/rcpthosts"); n != 2 || strings.Contains(out.String(), "b.example is also") {
		t.Errorf("%d warnings:\n%s", n, out.String())
	}
}

// FuzzSmtproutesExtras: for any smtproutes contents, the part of a line
// shown is a prefix of it, and what qmail-remote reads from that part is
// what it reads from the whole line (only the relay's name holding a
// blank differs: there the rest is part of the name).
func FuzzSmtproutesExtras(f *testing.F) {
	for _, s := range []string{":smtp.provider.test:587 me@provider.test s3cret:pw\n", "[192.0.2.1]:[192.0.2.2] x\n",
		"a:b:c:d\r\n", ": relay x\n", "\xef\xbb\xbfx:[y:1]z\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		lines := routeLines(b)
		for _, r := range lines {
			if r.extra == nil {
				continue
			}
			if !strings.HasPrefix(r.text, r.extra.Shown) || len(r.extra.Shown) >= len(r.text) {
				t.Fatalf("%q shown as %q", r.text, r.extra.Shown)
			}
			if r.extra.Kind == RouteInName {
				continue
			}
			whole, cut := remote.ParseTable([]string{r.text}), remote.ParseTable([]string{r.extra.Shown})
			if !maps(whole, cut) {
				t.Fatalf("%q: keys %v, of %q %v", r.text, whole, r.extra.Shown, cut)
			}
			for k := range whole {
				if remote.ParseRoute(whole[k]) != remote.ParseRoute(cut[k]) {
					t.Fatalf("%q: route %+v, of %q %+v", r.text, remote.ParseRoute(whole[k]), r.extra.Shown, remote.ParseRoute(cut[k]))
				}
			}
		}
	})
}
