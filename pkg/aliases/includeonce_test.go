package aliases

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/hqmail/hqmail/pkg/qerr"
)

// countOpens counts the :include: files opened until the test ends.
func countOpens(t *testing.T) *int {
	t.Helper()
	n := new(int)
	includeOpened = func(string) { *n++ }
	t.Cleanup(func() { includeOpened = nil })
	return n
}

// fanFiles writes the shape of the QA report: f0 .. f(levels-1) each
// naming the next one fan times (as fan different paths when links is
// set: symbolic links to it, each its own name), and the last one a
// single address. Read anew at each mention that is fan^levels reads.
func fanFiles(t *testing.T, dir string, levels, fan int, links bool) {
	t.Helper()
	f := func(i int) string { return filepath.Join(dir, "f"+strconv.Itoa(i)) }
	for i := range levels {
		var b strings.Builder
		for j := range fan {
			target := f(i + 1)
			if links {
				target = filepath.Join(dir, fmt.Sprintf("l%d-%d", i+1, j))
				if err := os.Symlink(f(i+1), target); err != nil {
					t.Fatal(err)
				}
			}
			fmt.Fprintf(&b, ":include:%s\n", target)
		}
		if err := os.WriteFile(f(i), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(f(levels), []byte("rfb@example.org\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestIncludeFanOut: a file named again, by the same path or another
// (a symbolic link), is not read again in a run: 4 levels of files that
// each name the next one 10 times are 5 reads, not 11,110 (with 30 names
// a level and 5 levels, newaliases and fastforward ran for hours). The
// result is the one address, once.
func TestIncludeFanOut(t *testing.T) {
	for _, links := range []bool{false, true} {
		t.Run(fmt.Sprint("links=", links), func(t *testing.T) {
			dir := searchableDir(t)
			fanFiles(t, dir, 4, 10, links)
			opens := countOpens(t)
			var got []string
			reads := 0
			x := Expander{
				Who:     Deliverer{UID: os.Geteuid()},
				Target:  func(s string) { got = append(got, s) },
				Include: func(*IncludeFile, *Untrusted) { reads++ },
			}
			if err := x.Run([]string{":include:" + filepath.Join(dir, "f0")}); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, []string{"rfb@example.org"}) {
				t.Errorf("targets %q", got)
			}
			// Each path is opened once; each file (of 5) read once.
			paths := 5
			if links {
				paths = 1 + 4*10
			}
			if reads != 5 || *opens != paths {
				t.Errorf("%d reads, %d opens; want 5 reads, %d opens", reads, *opens, paths)
			}
			// newaliases' check reads them as fastforward does.
			*opens = 0
			as := []Alias{{Name: "fan0", Targets: []string{":include:" + filepath.Join(dir, "f0")}, File: "a", Line: 1}}
			if w := includeWarnings(as, Deliverer{UID: os.Geteuid()}); len(w) != 0 {
				t.Errorf("warnings %q", w)
			}
			if *opens != paths {
				t.Errorf("newaliases: %d opens, want %d", *opens, paths)
			}
		})
	}
}

// TestIncludeOnceTrust: a file reached through a file not trusted with
// programs, and directly, gives what it gave when it was read at each
// mention: its program refused the one way and taken the other, in
// either order (it is read once for each trust state).
func TestIncludeOnceTrust(t *testing.T) {
	dir := searchableDir(t)
	x := filepath.Join(dir, "x.list")
	y := filepath.Join(dir, "y.list")
	includeFiles(t, dir, os.Geteuid(), map[string]string{
		"x.list": "|/bin/prog\nann@example.org\n",
		"y.list": ":include:" + x + "\nbob@example.org\n",
	})
	// y.list, which its group can write, is not trusted with programs.
	if err := os.Chmod(y, 0o664); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		targets []string
		want    []string
	}{
		{[]string{":include:" + y, ":include:" + x},
			[]string{"refused |/bin/prog in " + x + " from " + y, "ann@example.org", "bob@example.org", "|/bin/prog", "ann@example.org"}},
		{[]string{":include:" + x, ":include:" + y},
			[]string{"|/bin/prog", "ann@example.org", "refused |/bin/prog in " + x + " from " + y, "ann@example.org", "bob@example.org"}},
		// Named twice each way: the second mention adds nothing.
		{[]string{":include:" + x, ":include:" + y, ":include:" + x, ":include:" + y},
			[]string{"|/bin/prog", "ann@example.org", "refused |/bin/prog in " + x + " from " + y, "ann@example.org", "bob@example.org"}},
	} {
		var got []string
		e := Expander{
			Who:     Deliverer{UID: os.Geteuid()},
			Target:  func(s string) { got = append(got, s) },
			Refused: func(s, inc string, u *Untrusted) { got = append(got, "refused "+s+" in "+inc+" from "+u.File) },
		}
		if err := e.Run(tc.targets); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%q:\n got %q\nwant %q", tc.targets, got, tc.want)
		}
	}
	// newaliases named such a file, read first with its programs taken,
	// and crashed on it (a nil dereference): it warns of the program
	// skipped where the file is included from y.list.
	st, err := os.Stat(y)
	if err != nil {
		t.Fatal(err)
	}
	gid := st.Sys().(*syscall.Stat_t).Gid
	as := []Alias{{Name: "a", Targets: []string{":include:" + x, ":include:" + y}, File: "aliases", Line: 1}}
	want := []string{`aliases:1: warning: alias "a": :include: ` + x + " is included from " + y + ", which is writable by its group (gid " +
		strconv.Itoa(int(gid)) + `): its program and file line "|/bin/prog" will be skipped at delivery (its addresses are still used)`}
	if got := includeWarnings(as, Deliverer{UID: os.Geteuid()}); !slices.Equal(got, want) {
		t.Errorf("warnings:\n got %q\nwant %q", got, want)
	}
}

// TestIncludeOnceDepth: a file read once near the top, and met again
// deeper, where its nesting goes past MaxIncludeDepth, still bounces as
// it did when every mention was read.
func TestIncludeOnceDepth(t *testing.T) {
	dir := searchableDir(t)
	d := func(i int) string { return filepath.Join(dir, "d"+strconv.Itoa(i)) }
	files := map[string]string{"w": ":include:" + d(1) + "\n"}
	for i := 1; i < MaxIncludeDepth; i++ {
		files["d"+strconv.Itoa(i)] = ":include:" + d(i+1) + "\n"
	}
	files["d"+strconv.Itoa(MaxIncludeDepth)] = "deep@example.org\n"
	includeFiles(t, dir, os.Geteuid(), files)
	x := Expander{Who: Deliverer{UID: os.Geteuid()}}
	// d1 .. d10 directly: 10 files deep, the limit.
	if err := x.Run([]string{":include:" + d(1)}); err != nil {
		t.Fatal(err)
	}
	// Through w, once d1 .. d10 have been read: one too deep.
	err := x.Run([]string{":include:" + d(1), ":include:" + filepath.Join(dir, "w")})
	want := "Too many nested :include: files at " + d(MaxIncludeDepth) + ". (#5.4.6)"
	if err == nil || !qerr.IsPerm(err) || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
}

// TestIncludeBounds: more :include: files than MaxIncludeFiles, or more
// bytes than MaxIncludeTotal, in one run defer the delivery with a
// message that says so (newaliases warns of it); under the bounds the
// same files deliver.
func TestIncludeBounds(t *testing.T) {
	dir := searchableDir(t)
	fanFiles(t, dir, 4, 3, false) // 5 files, 40 bytes each or fewer
	top := []string{":include:" + filepath.Join(dir, "f0")}
	x := Expander{Who: Deliverer{UID: os.Geteuid()}}
	if err := x.Run(top); err != nil {
		t.Fatal(err)
	}
	set := func(p *int, v int) {
		old := *p
		*p = v
		t.Cleanup(func() { *p = old })
	}
	set(&MaxIncludeFiles, 4)
	err := x.Run(top)
	want := "Too many :include: files for one delivery: more than 4, at " + filepath.Join(dir, "f4") + ". (#4.3.0)"
	if err == nil || qerr.IsPerm(err) || err.Error() != want {
		t.Errorf("files: error %v, want %q", err, want)
	}
	as := []Alias{{Name: "fan", Targets: top, File: "aliases", Line: 3}}
	w := includeWarnings(as, Deliverer{UID: os.Geteuid()})
	if len(w) != 1 || w[0] != `aliases:3: warning: alias "fan": fastforward will defer every message to it (the mail stays queued): `+want {
		t.Errorf("newaliases: %q", w)
	}
	set(&MaxIncludeFiles, 5)
	if err := x.Run(top); err != nil {
		t.Errorf("5 files: %v", err)
	}
	set(&MaxIncludeTotal, 100)
	err = x.Run(top)
	if err == nil || qerr.IsPerm(err) || err.Error() != "Too much to read in :include: files for one delivery: more than 100 bytes, at "+filepath.Join(dir, "f0")+". (#4.3.0)" {
		t.Errorf("bytes: error %v", err)
	}
}
