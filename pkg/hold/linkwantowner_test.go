package hold

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLinkWantForeignOwner: a linkwant (or linkwant.boot) qmailq wrote
// in queue/lock, qmailq's, where it was kept then, saying "release"
// released remote delivery at boot (QA rsec2). control/ is root's, and
// the owner is still checked: one that is neither root's, the tree
// owner's nor this process's user's counts as not there; written by
// WriteLinkWant, the same words count.
func TestLinkWantForeignOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: a file of another user in the tree")
	}
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "control"), 0o755)
	saved := bootTime
	t.Cleanup(func() { bootTime = saved })
	bootTime = func() (time.Time, bool) { return time.Now().Add(-time.Hour), true }
	if err := WriteLinkWant(root, "release"); err != nil {
		t.Fatal(err)
	}
	if !ReleasedSinceBoot(root) {
		t.Fatal("a release written by WriteLinkWant does not count")
	}
	for _, name := range []string{LinkWantFile, LinkWantBootFile} {
		os.Lchown(filepath.Join(root, name), 65534, 65534)
	}
	if ReleasedSinceBoot(root) {
		t.Error("a release in a linkwant of uid 65534 released remote delivery at boot")
	}
	if _, _, ok := recordedBootID(root); ok {
		t.Error("a linkwant.boot of uid 65534 was read")
	}
	if _, err := ReadLinkWant(root, LinkWantFile); err == nil || !strings.Contains(err.Error(), "(uid 65534), neither root nor the tree's owner") {
		t.Errorf("ReadLinkWant of a file of uid 65534: %v", err)
	}
	if err := LinkWantRefused(root); err == nil || !strings.Contains(err.Error(), LinkWantFile+" belongs to") {
		t.Errorf("LinkWantRefused: %v", err)
	}
	// The tree's owner (the owner of its root: an ordinary user's tree,
	// whose hooks run as that user) is trusted as root is.
	os.Chown(root, 65534, 65534)
	if b, err := ReadLinkWant(root, LinkWantFile); err != nil || string(b) != "release\n" {
		t.Errorf("ReadLinkWant of the tree owner's file: %q %v", b, err)
	}
	if err := LinkWantRefused(root); err != nil {
		t.Errorf("LinkWantRefused in the owner's tree: %v", err)
	}
	if !ReleasedSinceBoot(root) {
		t.Error("the tree owner's release does not count")
	}
	os.Chown(root, 0, 0)
	os.Lchown(filepath.Join(root, LinkWantFile), 0, 0)
	if b, err := ReadLinkWant(root, LinkWantFile); err != nil || string(b) != "release\n" {
		t.Errorf("ReadLinkWant of root's file: %q %v", b, err)
	}
	// linkwant root's, linkwant.boot still uid 65534's: no release either
	// (QA rhold7: it fell back to linkwant's mtime against btime and
	// released, with no note), and the boot hold's note names it.
	if ReleasedSinceBoot(root) {
		t.Error("a release beside a linkwant.boot of uid 65534 released remote delivery at boot")
	}
	if err := LinkWantRefused(root); err == nil || !strings.Contains(err.Error(), LinkWantBootFile+" belongs to") {
		t.Errorf("LinkWantRefused with a linkwant.boot of uid 65534: %v", err)
	}
}
