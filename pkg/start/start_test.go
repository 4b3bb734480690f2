package start

import (
	"os"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/pkg/hold"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/sched"
)

func TestCreds(t *testing.T) {
	ids := &qhome.IDs{
		Qmaill: qhome.User{UID: 12, GID: 21}, Qmailq: qhome.User{UID: 14, GID: 20},
		Qmailr: qhome.User{UID: 15, GID: 20}, Qmails: qhome.User{UID: 16, GID: 20},
		Qmailp: qhome.User{UID: 13, GID: 21}, Qmail: 20, Nofiles: 21,
	}
	c := Creds(ids, true, []int{30, 20})
	want := map[string][3]any{
		"logger":       {12, 21, []int{21}},
		"qmail-lspawn": {0, 20, []int{20}},
		"qmail-rspawn": {15, 20, []int{20, 30}},
		"qmail-clean":  {14, 20, []int{20}},
		"qmail-queued": {14, 20, []int{20}},
		"qmail-send":   {16, 20, []int{20}},
	}
	if len(c) != len(want) {
		t.Errorf("%d creds, want %d", len(c), len(want))
	}
	for name, w := range want {
		got := c[name]
		if got == nil || got.UID != w[0] || got.GID != w[1] || !reflect.DeepEqual(got.Groups, w[2]) {
			t.Errorf("%s: %v, want %v", name, got, w)
		}
	}
	if c := Creds(ids, false, nil); len(c) != 0 {
		t.Errorf("not switching: %v", c)
	}
}

func TestStartHeld(t *testing.T) {
	tests := []struct {
		name                string
		startheld, existing *string
		want                string // "" = no holdremote afterwards
		created             bool
	}{
		{"no startheld", nil, nil, "", false},
		{"empty startheld", ptr(""), nil, "1\n", true},
		{"domains", ptr("a.example\n.b.example\n"), nil, "a.example\n.b.example\n", true},
		{"existing: everything held above it", ptr(""), ptr("x.example\n"), "*\nx.example\n", true},
		{"existing holds everything", ptr(""), ptr("1\n"), "1\n", false},
		{"domains added to existing", ptr("a.example\n"), ptr("x.example\n"), "x.example\na.example\n", true},
		{"existing without startheld", nil, ptr("1\n"), "1\n", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			ctl := filepath.Join(root, "control")
			os.Mkdir(ctl, 0o755)
			if tc.startheld != nil {
				os.WriteFile(filepath.Join(ctl, "startheld"), []byte(*tc.startheld), 0o644)
			}
			if tc.existing != nil {
				os.WriteFile(filepath.Join(ctl, "holdremote"), []byte(*tc.existing), 0o644)
			}
			created, err := StartHeld(root)
			if err != nil || created != tc.created {
				t.Fatalf("StartHeld = %v, %v; want %v", created, err, tc.created)
			}
			b, err := os.ReadFile(filepath.Join(ctl, "holdremote"))
			if tc.want == "" {
				if err == nil {
					t.Errorf("holdremote created: %q", b)
				}
				return
			}
			if string(b) != tc.want {
				t.Errorf("holdremote %q, want %q", b, tc.want)
			}
		})
	}
}

func ptr(s string) *string { return &s }

func TestStartHeldUnreadable(t *testing.T) {
	root := t.TempDir()
	ctl := filepath.Join(root, "control")
	os.MkdirAll(filepath.Join(ctl, "startheld"), 0o755) // a directory: read fails
	if _, err := StartHeld(root); err == nil {
		t.Error("unreadable startheld: no error")
	}
}

// A network hook that released remote delivery since the machine booted
// (the link came up before qmail-start) wins over startheld; one from an
// earlier boot does not.
func TestStartHeldAfterLinkUp(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mtime time.Time
		held  bool
	}{
		{"released since boot", time.Now(), false},
		{"released before boot", time.Unix(0, 0), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			os.MkdirAll(filepath.Join(root, "control"), 0o755)
			os.MkdirAll(filepath.Join(root, "queue", "lock"), 0o755)
			os.WriteFile(filepath.Join(root, "control", "startheld"), nil, 0o644)
			want := filepath.Join(root, hold.LinkWantFile)
			os.WriteFile(want, []byte("release\n"), 0o644)
			os.Chtimes(want, tc.mtime, tc.mtime)
			created, err := StartHeld(root)
			if err != nil || created != tc.held {
				t.Errorf("StartHeld = %v, %v; want %v", created, err, tc.held)
			}
		})
	}
}

// TestStartHeldFIFO: a control/startheld that is no regular file is an
// error StartHeld returns, not a read that waits for ever at boot.
func TestStartHeldFIFO(t *testing.T) {
	root := t.TempDir()
	ctl := filepath.Join(root, "control")
	os.Mkdir(ctl, 0o755)
	if err := syscall.Mkfifo(filepath.Join(ctl, "startheld"), 0o644); err != nil {
		t.Fatal(err)
	}
	if created, err := StartHeld(root); err == nil || created {
		t.Errorf("StartHeld with a FIFO: %v, %v; want an error", created, err)
	}
}

// TestStartHeldOverVPNDomains: with control/holdremote listing the VPN's
// domains (dialup.md's setup), startheld holds everything above them, as
// qmailctl boot does: qmail-send sees all remote delivery held. It left
// holdremote as it was, and qmail-send delivered to every other domain at
// start, offline (QA rdialup2).
func TestStartHeldOverVPNDomains(t *testing.T) {
	root := t.TempDir()
	ctl := filepath.Join(root, "control")
	os.Mkdir(ctl, 0o755)
	os.MkdirAll(filepath.Join(root, "queue", "lock"), 0o755)
	os.WriteFile(filepath.Join(ctl, "startheld"), nil, 0o644)
	os.WriteFile(filepath.Join(ctl, "holdremote"), []byte("corp.example\n.corp.example\n"), 0o644)
	held, err := StartHeld(root)
	b, _ := os.ReadFile(filepath.Join(ctl, "holdremote"))
	if err != nil || !held || string(b) != "*\ncorp.example\n.corp.example\n" {
		t.Fatalf("StartHeld = %v, %v; holdremote %q", held, err, b)
	}
	if all, _ := sched.ParseHoldRemote(b); !all {
		t.Errorf("qmail-send does not read holdremote %q as holding everything", b)
	}
}
