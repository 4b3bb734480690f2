package admin

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/pkg/cdb"
)

func TestNewmrh(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "control")
	if err := os.Mkdir(dir, 0755); err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	if code := NewmrhMain(root, &errb); code != 111 ||
		errb.String() != "qmail-newmrh: fatal: unable to read control/morercpthosts: no such file or directory\n" {
		t.Fatalf("missing list: exit %d, %q", code, errb.String())
	}
	list := "Example.COM\n.Sub.Example.org  \n\n# comment\nexample.com\nx.example\t\n"
	if err := os.WriteFile(filepath.Join(dir, "morercpthosts"), []byte(list), 0644); err != nil {
		t.Fatal(err)
	}
	errb.Reset()
	if code := NewmrhMain(root, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	path := filepath.Join(dir, "morercpthosts.cdb")
	f, err := cdb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, tc := range []struct {
		key   string
		found bool
	}{{"example.com", true}, {".sub.example.org", true}, {"x.example", true},
		{"Example.COM", false}, {"# comment", false}, {"", false}, {"y.example", false}} {
		data, found, err := f.Get([]byte(tc.key))
		if err != nil || found != tc.found || len(data) != 0 {
			t.Errorf("Get(%q) = %q, %v, %v; want found=%v", tc.key, data, found, err, tc.found)
		}
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary file left: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&^0644 != 0 {
		t.Errorf("mode %v, %v", fi.Mode(), err)
	}
}

// TestNewmrhTinycdb checks that a standard cdb reader (tinycdb's cdb -d)
// dumps exactly the records written.
func TestNewmrhTinycdb(t *testing.T) {
	bin, err := exec.LookPath("cdb")
	if err != nil {
		t.Skip("cdb (tinycdb) not installed; apt-get install tinycdb to run this cross-check")
	}
	root := t.TempDir()
	dir := filepath.Join(root, "control")
	os.Mkdir(dir, 0755)
	var lines []string
	for i := 0; i < 300; i++ {
		lines = append(lines, fmt.Sprintf("Host%d.Example", i))
	}
	if err := os.WriteFile(filepath.Join(dir, "morercpthosts"), []byte(strings.Join(lines, "\n")+"\n"), 0644); err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	if code := NewmrhMain(root, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	out, err := exec.Command(bin, "-d", filepath.Join(dir, "morercpthosts.cdb")).Output()
	if err != nil {
		t.Fatalf("cdb -d: %v", err)
	}
	var want strings.Builder
	for _, l := range lines {
		k := strings.ToLower(l)
		fmt.Fprintf(&want, "+%d,0:%s->\n", len(k), k)
	}
	want.WriteString("\n")
	if string(out) != want.String() {
		t.Errorf("cdb -d output differs:\n got %q\nwant %q", out[:min(len(out), 200)], want.String()[:200])
	}
}
