package install

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestPartWayOnlyFromPrograms: a run that fails while it replaces the
// programs is a PartWay (bin/ may hold old and new ones side by side);
// a refusal, which changes nothing, is not (qmail-install said "the run
// stopped part way" after every fatal error, "refusing to install there"
// included: QA rupg).
func TestPartWayOnlyFromPrograms(t *testing.T) {
	var pw *PartWay
	full := t.TempDir()
	os.WriteFile(filepath.Join(full, "x"), nil, 0o644)
	if err := Install(opts(t, full)); err == nil || errors.As(err, &pw) {
		t.Errorf("refused root: %v (a PartWay: %v)", err, errors.As(err, &pw))
	}
	root := filepath.Join(searchableDir(t), "q")
	if err := Install(opts(t, root)); err != nil {
		t.Fatal(err)
	}
	// A program whose place in bin/ is taken by a directory with
	// something in it cannot be replaced by a rename.
	prog := filepath.Join(root, "bin", Programs[0])
	os.Remove(prog)
	if err := os.MkdirAll(filepath.Join(prog, "in"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Install(opts(t, root)); !errors.As(err, &pw) {
		t.Errorf("programs not replaced: %v, want a PartWay", err)
	}
}
