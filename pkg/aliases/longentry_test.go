package aliases

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// longEntry is an alias "big" of n addresses, one a continuation line
// (every bad-th of them "john smith N", a syntax error, when bad > 0),
// with a comment and an empty line among them every 100 lines. It
// returns the text, the good targets and the lines of the bad ones.
func longEntry(n, bad int) (text string, targets []string, badLines []int) {
	var b strings.Builder
	line := 1
	b.WriteString("big: a0@example.org,\n")
	targets = append(targets, "a0@example.org")
	for i := 1; i < n; i++ {
		if i%100 == 0 {
			b.WriteString("# a note\n\n")
			line += 2
		}
		line++
		if bad > 0 && i%bad == 0 {
			fmt.Fprintf(&b, "  john smith%d,\n", i)
			badLines = append(badLines, line)
			continue
		}
		fmt.Fprintf(&b, "  a%d@example.org,\n", i)
		targets = append(targets, fmt.Sprintf("a%d@example.org", i))
	}
	b.WriteString("  last@example.org\n")
	return b.String(), append(targets, "last@example.org"), badLines
}

// TestParseLongContinuation: an entry of 10,000 continuation lines
// gives what the same targets on one line give, and is read in linear
// work: each line was appended to the entry by copying it whole (13 s
// for 40,000 lines, 3 minutes for 200,000). Counted in bytes allocated,
// which were 9,000 times the file's size here (36,000 times at 40,000
// lines), and are now a small multiple of it.
func TestParseLongContinuation(t *testing.T) {
	text, targets, _ := longEntry(10000, 0)
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	as, errs := Parse(strings.NewReader(text), "a")
	runtime.ReadMemStats(&m1)
	if len(errs) != 0 || len(as) != 1 || as[0].Name != "big" || as[0].Line != 1 || !slices.Equal(as[0].Targets, targets) {
		t.Fatalf("errors %v; %d aliases", errs, len(as))
	}
	if alloc := m1.TotalAlloc - m0.TotalAlloc; alloc > 100*uint64(len(text)) {
		t.Errorf("%d bytes allocated for a file of %d: not linear", alloc, len(text))
	}
	one, errs := Parse(strings.NewReader("big: "+strings.Join(targets, ", ")+"\n"), "a")
	if len(errs) != 0 || len(one) != 1 || !slices.Equal(one[0].Targets, as[0].Targets) {
		t.Errorf("one line: %v, %d aliases", errs, len(one))
	}
}

// TestParseContinuationErrorLines: in a long entry each bad target is
// reported at its own physical line, comments and empty lines between
// continuation lines counted.
func TestParseContinuationErrorLines(t *testing.T) {
	text, _, badLines := longEntry(2000, 7)
	as, errs := Parse(strings.NewReader(text), "a")
	if len(as) != 0 {
		t.Errorf("the entry was taken with its errors")
	}
	var got []int
	for _, e := range errs {
		pe := e.(*Error)
		if !strings.HasPrefix(pe.Msg, `bad address "john smith`) {
			t.Fatalf("error %v", pe)
		}
		got = append(got, pe.Line)
	}
	if !slices.Equal(got, badLines) {
		t.Errorf("lines\n got %v\nwant %v", got, badLines)
	}
}

// TestParseLineTooLong: a physical line longer than MaxLine is an error
// that names it and says so (it was "read error: bufio.Scanner: token
// too long"), and nothing is compiled.
func TestParseLineTooLong(t *testing.T) {
	root := t.TempDir()
	os.Mkdir(filepath.Join(root, "etc"), 0o755)
	src := filepath.Join(root, "aliases")
	long := "big: " + strings.Repeat("a@example.org, ", MaxLine/15) + "b@example.org\n"
	if err := os.WriteFile(src, []byte("postmaster: root\n"+long+"after: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb strings.Builder
	if code := NewaliasesMain(root, []string{"-f", src}, &out, &errb); code != 100 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	want := "newaliases: " + src + ":2: line longer than 4 MB (continue a long entry on lines that start with a space or tab)\n" +
		"newaliases: fatal: 1 error(s) in " + src + " (line 2); " + DBFile + " not changed\n"
	if errb.String() != want {
		t.Errorf("stderr\n got %q\nwant %q", errb.String(), want)
	}
	if _, err := os.Stat(filepath.Join(root, DBFile)); !os.IsNotExist(err) {
		t.Errorf("database written: %v", err)
	}
	// A line of MaxLine bytes is read; one more byte is too many.
	fit := "big: " + strings.Repeat("a", MaxLine-len("big: @example.org")) + "@example.org"
	if as, errs := Parse(strings.NewReader(fit+"\nb: c\n"), "a"); len(errs) != 0 || len(as) != 2 {
		t.Errorf("a line of %d bytes: %v", len(fit), errs)
	}
	if _, errs := Parse(strings.NewReader("b: c\na"+fit+"\n"), "a"); len(errs) != 1 || errs[0].(*Error).Line != 2 {
		t.Errorf("a line of %d bytes: %v", len(fit)+1, errs)
	}
}

// TestNewaliasesManyErrors: the summary names ten of the lines at fault,
// then "...".
func TestNewaliasesManyErrors(t *testing.T) {
	root := t.TempDir()
	os.Mkdir(filepath.Join(root, "etc"), 0o755)
	src := filepath.Join(root, "aliases")
	text, _, _ := longEntry(200, 2)
	os.WriteFile(src, []byte(text), 0o644)
	var out, errb strings.Builder
	if code := NewaliasesMain(root, []string{"-n", "-f", src}, &out, &errb); code != 100 {
		t.Fatalf("exit %d", code)
	}
	want := "newaliases: fatal: 99 error(s) in " + src + " (line 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, ...); " + DBFile + " not changed\n"
	if e := errb.String(); !strings.HasSuffix(e, want) {
		t.Errorf("stderr ends\n%q\nwant %q", e[max(0, len(e)-200):], want)
	}
}

// BenchmarkParseContinuation: one entry of 40,000 continuation lines.
func BenchmarkParseContinuation(b *testing.B) {
	text, _, _ := longEntry(40000, 0)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		Parse(strings.NewReader(text), "a")
	}
}

// BenchmarkNewaliasesManyErrors: newaliases -n on one entry of 40,000
// continuation lines, every other one a syntax error (each error's line
// was looked up through every line of the entry, and the summary
// searched every line reported before).
func BenchmarkNewaliasesManyErrors(b *testing.B) {
	root := b.TempDir()
	os.Mkdir(filepath.Join(root, "etc"), 0o755)
	src := filepath.Join(root, "aliases")
	text, _, _ := longEntry(40000, 2)
	os.WriteFile(src, []byte(text), 0o644)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		NewaliasesMain(root, []string{"-n", "-f", src}, io.Discard, io.Discard)
	}
}
