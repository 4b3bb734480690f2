package install

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qhome"
)

// TestBinElsewhere: every program finds its tree from where it really is
// (the directory above its bin/), so a bin/ that is a symbolic link to
// another tree's bin/ made this tree's qmailctl and sendmail act on that
// tree, and one to a shared directory made them all fail, while
// qmail-install and -check said nothing (QA). The repair refuses such a
// bin/ (exit 111) before it changes anything, in this tree or the other,
// and -check names it, with where the programs would go. A program in
// bin/ that is such a link is named too; the repair replaces it when it
// copies the programs, and names it when it does not.
func TestBinElsewhere(t *testing.T) {
	root, o := installed(t)
	bin := filepath.Join(root, "bin")
	other := filepath.Join(searchableDir(t), "other")
	for _, d := range []string{"bin", "queue", "control"} {
		if err := os.MkdirAll(filepath.Join(other, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(other, "bin", "qmail-inject"), []byte("#!/bin/sh\n"), 0o755)
	shared := filepath.Join(searchableDir(t), "opt", "bin")
	os.MkdirAll(shared, 0o755)
	if err := os.Rename(bin, bin+".mine"); err != nil {
		t.Fatal(err)
	}
	// A directory not named bin: the programs take qhome's default root.
	dflt := "fail (" + qhome.DefaultRoot + " is no installed qmail tree), not on " + root
	if IsTree(qhome.DefaultRoot) {
		dflt = "act on the tree " + qhome.DefaultRoot + ", not on " + root
	}
	for _, tc := range []struct {
		target, goes string
	}{
		{filepath.Join(other, "bin"), "act on the tree " + other + ", not on " + root},
		{shared, "fail (" + filepath.Dir(shared) + " is no installed qmail tree), not on " + root},
		{filepath.Join(root, "bin.mine"), dflt},
	} {
		os.Remove(bin)
		if err := os.Symlink(tc.target, bin); err != nil {
			t.Fatal(err)
		}
		before, beforeOther := snapshot(t, root), snapshot(t, filepath.Dir(other))
		err := Install(o)
		want := bin + ": is a symbolic link to " + tc.target + ": every program run from this bin/ finds its tree from where it really is " +
			"(the directory above that bin/), so it would " + tc.goes
		if err == nil || qerr.ExitCode(err) != 111 || !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), "; nothing was changed") {
			t.Errorf("bin -> %s: %v\nwant exit 111 and %q...", tc.target, err, want)
		}
		sameSnapshot(t, "the tree", before, snapshot(t, root))
		sameSnapshot(t, "the other tree", beforeOther, snapshot(t, filepath.Dir(other)))
		dev, err := Check(root)
		if err != nil || !slices.ContainsFunc(dev, func(l string) bool {
			return strings.HasPrefix(l, "bin: is a symbolic link to "+tc.target+": every program") && strings.Contains(l, tc.goes) &&
				strings.HasSuffix(l, "(a repair refuses to run until then)")
		}) {
			t.Errorf("check of bin -> %s: %q %v", tc.target, dev, err)
		}
	}
	os.Remove(bin)
	if err := os.Rename(bin+".mine", bin); err != nil {
		t.Fatal(err)
	}

	// One program a link to another tree's.
	inject := filepath.Join(bin, "qmail-inject")
	os.Remove(inject)
	if err := os.Symlink(filepath.Join(other, "bin", "qmail-inject"), inject); err != nil {
		t.Fatal(err)
	}
	want := "bin/qmail-inject: is a symbolic link to " + filepath.Join(other, "bin", "qmail-inject") +
		": the program run from this name finds its tree from where it really is (the directory above that bin/), so it would act on the tree " + other
	if dev, _ := Check(root); !slices.ContainsFunc(dev, func(l string) bool { return strings.HasPrefix(l, want) }) {
		t.Errorf("check of a program link: %q, want %q...", dev, want)
	}
	// Not copied (the source is bin/ itself): named, exit 111.
	same := o
	same.Source = bin
	if err := Install(same); err == nil || qerr.ExitCode(err) != 111 || !strings.Contains(err.Error(), root+"/"+want) {
		t.Errorf("repair from bin/ itself: %v, want exit 111 and %q", err, root+"/"+want)
	}
	// Copied: replaced by the program.
	if err := Install(o); err != nil {
		t.Errorf("repair: %v", err)
	}
	if fi, err := os.Lstat(inject); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("bin/qmail-inject after the repair: %v %v", fi, err)
	}
	if dev, err := Check(root); err != nil || len(dev) != 0 {
		t.Errorf("check after the repair: %q %v", dev, err)
	}
}
