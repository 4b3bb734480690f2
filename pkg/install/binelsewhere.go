package install

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/qhome"
)

// Every program finds its tree from where it runs: the directory above
// the bin/ its executable resolves to (qhome.Root; /var/qmail when that
// directory is not named bin). So the tree's bin/, and each program in
// it, must resolve into the tree itself. A bin/ that is a symbolic link
// to another tree's bin/ makes every program of this tree act on that
// one (qmailctl holds its mail, sendmail queues there); one to a shared
// directory (/usr/local/bin) makes them all fail ("... is no installed
// qmail tree"). The repair refuses such a bin/ before it changes
// anything, and -check names it; a program in bin/ that is such a link is
// named by both (the repair replaces it when it copies the programs).

// binElsewhere says why root/bin, when it is a symbolic link, does not
// lead to root's own bin/; "" when it does, or is no link.
func binElsewhere(root string) string {
	bin := filepath.Join(root, "bin")
	fi, err := os.Lstat(bin)
	if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		return ""
	}
	return runsElsewhere(root, bin, true)
}

// runsElsewhere says why the symbolic link p (bin/ itself when dir, else
// a program in bin/) leads out of the tree at root; "" when the programs
// run through it find root.
func runsElsewhere(root, p string, dir bool) string {
	target, _ := os.Readlink(p)
	res, err := filepath.EvalSymlinks(p)
	if err != nil {
		what := "the program"
		if dir {
			what = "a directory"
		}
		return fmt.Sprintf("is a symbolic link to %s, which cannot be followed (%v): nothing can be run from it (put %s in its place)",
			target, unwrapPath(err), what)
	}
	exeDir := res
	if !dir {
		exeDir = filepath.Dir(res)
	}
	its := qhome.RootOf(filepath.Join(exeDir, "x"))
	a, err1 := os.Stat(its)
	b, err2 := os.Stat(root)
	if err1 == nil && err2 == nil && os.SameFile(a, b) {
		return ""
	}
	what := "act on the tree " + its
	if qhome.Uninstalled(its, "x") != "" || !IsTree(its) {
		what = "fail (" + its + " is no installed qmail tree)"
	}
	who, fix := "every program run from this bin/ finds", "put a directory of this tree's own in its place (remove the link: the repair makes bin/ and copies the programs there)"
	if !dir {
		who, fix = "the program run from this name finds", "put the program itself in its place (a run of qmail-install from the build's bin/, or make install, copies it)"
	}
	return fmt.Sprintf("is a symbolic link to %s: %s its tree from where it really is (the directory above that bin/), so it would %s, not on %s; %s",
		target, who, what, root, fix)
}

// unwrapPath is err without the path a *fs.PathError adds.
func unwrapPath(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err
	}
	return err
}

// programLinks names each of Programs in root/bin that is a symbolic
// link leading out of the tree (runsElsewhere), rel ("bin/NAME") first;
// none when bin/ itself is a link (binElsewhere names that).
func programLinks(root string) []string {
	if fi, err := os.Lstat(filepath.Join(root, "bin")); err != nil || !fi.IsDir() {
		return nil
	}
	var out []string
	for _, name := range Programs {
		p := filepath.Join(root, "bin", name)
		if fi, err := os.Lstat(p); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			continue
		}
		if l := runsElsewhere(root, p, false); l != "" {
			out = append(out, "bin/"+name+": "+l)
		}
	}
	return out
}

// programsElsewhere records a problem for each program in bin/ that is
// a symbolic link out of the tree once the programs are copied (a copy
// replaces such a link; one left is what the repair did not copy).
func (w *walker) programsElsewhere() {
	bin, err := w.dir("bin")
	if err != nil || w.linked["bin"] {
		return
	}
	for _, name := range Programs {
		var st unix.Stat_t
		if unix.Fstatat(bin, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil || st.Mode&unix.S_IFMT != unix.S_IFLNK {
			continue
		}
		if l := runsElsewhere(w.root, w.path("bin/"+name), false); l != "" {
			w.problem("%s: %s, and run qmail-install again", w.path("bin/"+name), l)
		}
	}
}
