package install

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestCheckMissingPrograms: a program of Programs missing from bin/ (an
// install that stopped part way on a full disk, one removed by hand) is
// a deviation, named with how it comes back; -check said nothing and
// exited 0 (QA). A program that is a symbolic link is no missing one,
// and behind a bin/ that leads out of the tree none is named missing:
// the one line for bin/ says what to do.
func TestCheckMissingPrograms(t *testing.T) {
	root, _ := installed(t)
	bin := filepath.Join(root, "bin")
	for _, name := range []string{"qmail-send", "qmail-queue"} {
		if err := os.Remove(filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	line := func(name string) string {
		return "bin/" + name + ": no such file or directory (a run of qmail-install from the build's bin/, or make install, copies it)"
	}
	want := []string{line("qmail-queue"), line("qmail-send")}
	if dev, err := Check(root); err != nil || !slices.Equal(dev, want) {
		t.Errorf("check with two programs removed:\n got %q %v\nwant %q", dev, err, want)
	}

	// A link in bin/ to a program of the tree is no deviation; a
	// dangling one is programLinks's line only.
	if err := os.Symlink("qmail-inject", filepath.Join(bin, "qmail-send")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("nowhere", filepath.Join(bin, "qmail-queue")); err != nil {
		t.Fatal(err)
	}
	dev, err := Check(root)
	if err != nil || len(dev) != 1 || !strings.HasPrefix(dev[0], "bin/qmail-queue: is a symbolic link to nowhere, which cannot be followed") {
		t.Errorf("check with a program a link, one dangling: %q %v", dev, err)
	}

	// bin/ a link to an empty directory of another tree: the bin line,
	// no program named missing.
	other := filepath.Join(searchableDir(t), "other")
	for _, d := range []string{"bin", "queue", "control"} {
		if err := os.MkdirAll(filepath.Join(other, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(bin, bin+".mine"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(other, "bin"), bin); err != nil {
		t.Fatal(err)
	}
	dev, err = Check(root)
	if err != nil || len(dev) != 1 || !strings.HasPrefix(dev[0], "bin: is a symbolic link to "+filepath.Join(other, "bin")+": ") {
		t.Errorf("check with bin/ a link to another tree's empty bin/: %q %v", dev, err)
	}
}
