package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/hqmail/hqmail/internal/testutil"
	"github.com/hqmail/hqmail/pkg/qhome"
)

// TestNewuOwner: a users/cdb made where there was none gets qmail-install's
// owner and group (root, group qmail of etc/ids; the installer in a shared
// tree), not root:root, which qmail-install -check warns about; an
// existing one keeps its own. Without etc/ids a warning says so.
func TestNewuOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: only root gives a file away")
	}
	for _, tc := range []struct {
		name     string
		ids      *qhome.IDs // nil: no etc/ids
		old      bool       // a users/cdb of 1234:5678 is there
		uid, gid uint32
		warning  bool
	}{
		{"new", &qhome.IDs{Qmail: 4242, Nofiles: 4243}, false, 0, 4242, false},
		{"new in a shared tree", qhome.SharedIDs(3131, 3132), false, 3131, 3132, false},
		{"existing", &qhome.IDs{Qmail: 4242, Nofiles: 4243}, true, 1234, 5678, false},
		{"no etc/ids", nil, false, 0, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for _, d := range []string{"bin", "users", "etc"} {
				if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if tc.ids != nil {
				if err := os.WriteFile(filepath.Join(root, qhome.IDsFile), []byte(tc.ids.Format()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(root, "users", "assign"), []byte("=joe:joe:1000:1000:/home/joe:::\n.\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			db := filepath.Join(root, "users", "cdb")
			if tc.old {
				if err := os.WriteFile(db, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Chown(db, 1234, 5678); err != nil {
					t.Fatal(err)
				}
			}
			prog := filepath.Join(root, "bin", "qmail-newu")
			testutil.CopyTestBinary(t, prog)
			var stderr bytes.Buffer
			cmd := exec.Command(prog)
			cmd.Env = append(os.Environ(), runMainEnv+"=1")
			cmd.Stderr = &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("%v: %s", err, stderr.String())
			}
			if got := stderr.Len() > 0; got != tc.warning {
				t.Errorf("stderr %q", stderr.String())
			}
			var st syscall.Stat_t
			if err := syscall.Stat(db, &st); err != nil {
				t.Fatal(err)
			}
			if st.Uid != tc.uid || st.Gid != tc.gid || st.Mode&0o7777 != 0o644 {
				t.Errorf("users/cdb %d:%d mode %o; want %d:%d mode 644", st.Uid, st.Gid, st.Mode&0o7777, tc.uid, tc.gid)
			}
		})
	}
}
