package hold

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMsgsRoundTrip(t *testing.T) {
	q := t.TempDir()
	if got, err := ReadMsgs(q); err != nil || len(got) != 0 {
		t.Fatalf("missing file: %v %v", got, err)
	}
	os.Mkdir(filepath.Join(q, "bounce"), 0o700)
	in := map[uint64]bool{100: true, 9: true, 123456789: true}
	if err := os.WriteFile(filepath.Join(q, "bounce", MsgsName), MsgsText(in), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := ReadMsgs(q)
	if err != nil || len(got) != len(in) {
		t.Fatalf("read back %v, %v", got, err)
	}
	for id := range in {
		if !got[id] {
			t.Errorf("id %d lost", id)
		}
	}
	if want := "# messages held by qmailctl; qmail-send starts no delivery for them\n9\n100\n123456789\n"; string(MsgsText(in)) != want {
		t.Errorf("text %q", MsgsText(in))
	}
}

func TestMsgsJunkIgnored(t *testing.T) {
	q := t.TempDir()
	os.Mkdir(filepath.Join(q, "bounce"), 0o700)
	os.WriteFile(filepath.Join(q, "bounce", MsgsName), []byte("# c\n 12 \n0\n-3\n1x\n99999999999999999999999\n007\n"), 0o600)
	got, err := ReadMsgs(q)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[12] || !got[7] {
		t.Errorf("got %v, want 12 and 7", got)
	}
}
