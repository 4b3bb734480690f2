package unixid

import "testing"

func TestParseFormat(t *testing.T) {
	for _, s := range []string{"0", "1", "1000", "2147483647", "2147483648", "3000000000", "4294967294"} {
		id, ok := Parse(s)
		if !ok {
			t.Errorf("Parse(%q) refused", s)
			continue
		}
		if got := Format(id); got != s {
			t.Errorf("Format(Parse(%q)) = %q", s, got)
		}
	}
	if id, ok := Parse("007"); !ok || Format(id) != "7" {
		t.Errorf("Parse(007) = %d, %v", id, ok)
	}
	for _, s := range []string{"", "-1", "4294967295", "4294967296", "1e3", " 1", "+1", "x"} {
		if id, ok := Parse(s); ok {
			t.Errorf("Parse(%q) = %d, want a refusal", s, id)
		}
	}
}

// TestKernelBits: the int an id is kept in has the id's low 32 bits, which
// is what a system call taking it passes to the kernel.
func TestKernelBits(t *testing.T) {
	id, _ := Parse("3000000000")
	if uint32(id) != 3000000000 {
		t.Errorf("Parse(3000000000) keeps bits %d", uint32(id))
	}
}
