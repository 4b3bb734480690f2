package admin

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hqmail/hqmail/pkg/qhome"
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
			"control/defaultdelivery":   "|/var/qmail/bin/dot-forward .forward\n./Maildir/\n",
			"control/mystery":           "?\n",
		}},
		// Saved with CRLF line endings: a warning below each entry whose
		// value (as qmail reads it) ends in a CR, and nowhere else.
		{"crlf", map[string]string{
			"etc/ids":                   qhome.SharedIDs(1000, 1000).Format(),
			"control/me":                "mx.example.org\r\n",
			"control/locals":            "example.org\r\nmx.example.org\r\n",
			"control/rcpthosts":         "example.org\r\n\r\n",
			"control/badmailfrom":       "# only the comment\r\nbad@example.net\n",
			"control/concurrencyremote": "600\r\n",
			"control/helohost":          "helo.example \r\n",
			"control/smtpgreeting":      "greeting.example\nnot read\r\n",
			"control/holdremote":        "corp.example\r\n",
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
			if code := ShowctlMain(root, &out); code != 0 {
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

func TestShowctlErrors(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"control/holdremote/x": ""})
	var out bytes.Buffer
	code := ShowctlMain(root, &out)
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
