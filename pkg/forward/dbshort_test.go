package forward

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestFastforwardShortDatabase: an aliases.cdb that is empty, or cut
// short, defers the delivery (111) with a message that says what is
// wrong ("unknown error" before).
func TestFastforwardShortDatabase(t *testing.T) {
	root := t.TempDir()
	writeAliases(t, root, "staff: alice, bob@example.net\n")
	db := filepath.Join(root, "etc/aliases.cdb")
	full, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	localEnv(t, "alias", "staff", "staff")
	short := "Unable to open " + db + ": not a cdb file: too short (empty or truncated; run newaliases). (#4.3.0)\n"
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, short},
		{"shorter than its header", full[:100], short},
		{"tables cut off", full[:2048+20], "Unable to read " + db + ": not a cdb file, or truncated (run newaliases). (#4.3.0)\n"},
	} {
		if err := os.WriteFile(db, tc.data, 0o644); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if code := FastforwardMain(root, nil, msgFile(t, "x\n"), &out); code != 111 || out.String() != tc.want {
			t.Errorf("%s: exit %d, output %q\nwant 111, %q", tc.name, code, out.String(), tc.want)
		}
	}
}
