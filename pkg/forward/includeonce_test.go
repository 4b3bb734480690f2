package forward

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExpandFanOut: the shape of the QA report, small: f0 .. f3 each
// name the next file ten times, f4 holds an address and a bad target.
// Each file is read once, so the bad target is reported once (read at
// every mention it was reported 1,000 times, and 5 levels of 30 held a
// delivery slot for hours), and the address is forwarded once.
func TestExpandFanOut(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	f := func(i int) string { return filepath.Join(dir, fmt.Sprint("f", i)) }
	for i := range 4 {
		os.WriteFile(f(i), []byte(strings.Repeat(":include:"+f(i+1)+"\n", 10)), 0o644)
	}
	os.WriteFile(f(4), []byte("rfb@example.org\njohn smith\n"), 0o644)
	p, err := Expand([]string{":include:" + f(0)}, &Env{})
	if err != nil {
		t.Fatal(err)
	}
	want := f(4) + `:2: syntax error in :include: file, target skipped: bad address "john smith" (quote programs and files that contain spaces) (#5.2.4)`
	if strings.Join(p.Forwards, ",") != "rfb@example.org" || len(p.Refused) != 1 || p.Refused[0] != want {
		t.Errorf("forwards %q, %d refusals (want 1): %.200q", p.Forwards, len(p.Refused), p.Refused)
	}
}
