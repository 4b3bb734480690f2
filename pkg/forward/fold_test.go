package forward

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/pkg/aliases"
	"github.com/hqmail/hqmail/pkg/cdb"
	"github.com/hqmail/hqmail/pkg/idna"
	"github.com/hqmail/hqmail/pkg/qq"
)

// fastforward folds the local part as qmail does, ASCII letters only.
// With Unicode folding "\xe8lise" (Latin-1) reached the alias "\xe9lise"
// (both U+FFFD + "lise"), and "\u0130nfo" and "\u212aevin" the aliases
// info and kevin.
func TestFastforwardFoldsASCIIOnly(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0755)
	as, errs := aliases.Parse(strings.NewReader("info: to-info\nkevin: to-kevin\n\xe9lise: to-e9\n"), "a")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if err := cdb.WriteFile(filepath.Join(root, aliases.DBFile), 0644, aliases.Records(as, "a")); err != nil {
		t.Fatal(err)
	}
	q := capture(t)
	for local, want := range map[string]string{
		"INFO":       "to-info",
		"Kevin":      "to-kevin",
		"\xe9lise":   "to-e9",
		"\xe9LISE":   "to-e9",
		"\xe8lise":   "",
		"\u0130nfo":  "",
		"\u212aevin": "",
	} {
		os.Remove(filepath.Join(q, "envelope"))
		var out bytes.Buffer
		localEnv(t, "alias", local, local)
		code := FastforwardMain(root, nil, msgFile(t, "x\n"), &out)
		if want == "" {
			if code != 100 || !strings.Contains(out.String(), "no mailbox here by that name") {
				t.Errorf("%q: exit %d %q, want no mailbox", local, code, out.String())
			}
			continue
		}
		env, _ := os.ReadFile(filepath.Join(q, "envelope"))
		got, _ := qq.ParseEnvelope(env)
		if code != 99 || got == nil || strings.Join(got.Recipients, ",") != want {
			t.Errorf("%q: exit %d %q, envelope %q; want it forwarded to %s", local, code, out.String(), env, want)
		}
	}
}

// IsSelf folds ASCII letters only in the local part, and the domain as
// control/locals is read (idna.Fold), so that a local domain written with
// non-ASCII capitals, or in its other IDN spelling, is still local.
func TestIsSelfFoldsASCIIOnly(t *testing.T) {
	locals := map[string]bool{idna.Fold("MX.B\u00dcCHER.example"): true}
	for _, c := range []struct {
		user, addr string
		want       bool
	}{
		{"kevin", "KEVIN@Example.ORG", true},
		{"kevin", "Kevin", true},
		{"kevin", "\u212aevin", false},
		{"kevin", "\u212aevin@example.org", false},
		{"info", "\u0130nfo", false},
		{"\xe9lise", "\xe9lise@example.org", true},
		{"\xe9lise", "\xe8lise", false},
		{"\xe9lise", "\xe8lise@example.org", false},
		{"me", "me@MX.B\u00dcCHER.example", true},
		{"me", "me@mx.B\u00dcCHER.EXAMPLE", true},
		{"me", "me@mx.xn--bcher-kva.example", true},
		{"me", "me@mx.bucher.example", false},
	} {
		e := &Env{User: c.user, Host: "example.org", Locals: locals}
		if got := e.IsSelf(c.addr); got != c.want {
			t.Errorf("user %q: IsSelf(%q) = %v, want %v", c.user, c.addr, got, c.want)
		}
	}
}

// Two addresses that differ in more than ASCII case are two targets: with
// Unicode folding the second of each pair was dropped as a repeat.
func TestExpandKeepsNonASCIIDistinct(t *testing.T) {
	ts := []string{"\xe9lise@example.net", "\xe8lise@example.net", "kevin@example.net", "\u212aevin@example.net",
		"info@example.net", "\u0130nfo@example.net", "INFO@example.net"}
	p, err := Expand(ts, &Env{User: "me", Host: "example.org"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(p.Forwards, ","), strings.Join(ts[:6], ","); got != want {
		t.Fatalf("forwards %q, want %q", got, want)
	}
}

// A bare name is qualified with envnoathost (else me) folded as
// control/locals is: when me has non-ASCII capitals, "fwda" and
// "fwda@other.example" (both local) are one mailbox, delivered once.
func TestExpandNoAtHostFoldedAsLocals(t *testing.T) {
	root := t.TempDir()
	ctl := filepath.Join(root, "control")
	os.MkdirAll(ctl, 0o755)
	os.WriteFile(filepath.Join(ctl, "me"), []byte("MX.B\u00dcCHER.example\n"), 0o644)
	os.WriteFile(filepath.Join(ctl, "locals"), []byte("MX.B\u00dcCHER.example\nother.example\n"), 0o644)
	localEnv(t, "me", "me", "")
	env := EnvFromOS(root)
	p, err := Expand([]string{"fwda", "fwda@other.example"}, &env)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(p.Forwards, ","); got != "fwda" {
		t.Fatalf("forwards %q, want fwda once", got)
	}
}
