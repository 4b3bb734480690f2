package hold

import (
	"os"
	"path/filepath"
	"testing"
)

// TestLinkWantStamp: a word recorded again, even the same one, changes
// the stamp; reading does not.
func TestLinkWantStamp(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "control"), 0o755)
	none := ReadLinkWantStamp(root)
	if err := WriteLinkWant(root, "hold"); err != nil {
		t.Fatal(err)
	}
	first := ReadLinkWantStamp(root)
	if first == none {
		t.Error("recording a word left the stamp as with no file")
	}
	if again := ReadLinkWantStamp(root); again != first {
		t.Error("the stamp changed without a write")
	}
	if err := WriteLinkWant(root, "hold"); err != nil {
		t.Fatal(err)
	}
	if ReadLinkWantStamp(root) == first {
		t.Error("the same word recorded again left the stamp as it was")
	}
}
