package control

import (
	"os"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
)

// dir makes a control directory holding files (name -> contents).
func dir(t *testing.T, files map[string]string) *Dir {
	t.Helper()
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "control"), 0o755); err != nil {
		t.Fatal(err)
	}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(root, "control", n), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return Open(root)
}

func TestReadLine(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content *string
		want    string
		found   bool
	}{
		{"missing", nil, "", false},
		{"plain", ptr("example.com\n"), "example.com", true},
		{"no newline", ptr("example.com"), "example.com", true},
		{"trailing spaces and tabs", ptr("example.com \t \n"), "example.com", true},
		{"leading space kept", ptr("  example.com\n"), "  example.com", true},
		{"only first line", ptr("first\nsecond\n"), "first", true},
		{"empty file", ptr(""), "", true},
		{"empty first line", ptr("\nsecond\n"), "", true},
		{"comment is a value here", ptr("# not a comment\n"), "# not a comment", true},
		{"CR is kept", ptr("host\r\n"), "host\r", true},
		{"inner space kept", ptr("a b\n"), "a b", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{}
			if tc.content != nil {
				files["x"] = *tc.content
			}
			got, found, err := dir(t, files).ReadLine("x")
			if err != nil || got != tc.want || found != tc.found {
				t.Errorf("got %q, %v, %v; want %q, %v", got, found, err, tc.want, tc.found)
			}
		})
	}
}

func ptr(s string) *string { return &s }

func TestReadList(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content *string
		want    []string
		found   bool
	}{
		{"missing", nil, nil, false},
		{"empty", ptr(""), nil, true},
		{"lines", ptr("a\nb\n"), []string{"a", "b"}, true},
		{"no final newline", ptr("a\nb"), []string{"a", "b"}, true},
		{"blank lines skipped", ptr("a\n\n\nb\n"), []string{"a", "b"}, true},
		{"comments skipped", ptr("# c\na\n#b\n"), []string{"a"}, true},
		{"indented hash is data", ptr(" #x\n"), []string{" #x"}, true},
		{"trailing white space", ptr("a \t\nb\t\n"), []string{"a", "b"}, true},
		{"white-space-only line skipped", ptr("a\n \t \nb\n"), []string{"a", "b"}, true},
		{"duplicates kept", ptr("a\na\n"), []string{"a", "a"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{}
			if tc.content != nil {
				files["x"] = *tc.content
			}
			got, found, err := dir(t, files).ReadList("x")
			if err != nil || !reflect.DeepEqual(got, tc.want) || found != tc.found {
				t.Errorf("got %q, %v, %v; want %q, %v", got, found, err, tc.want, tc.found)
			}
		})
	}
}

func TestReadInt(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content *string
		want    int
	}{
		{"missing", nil, 20},
		{"number", ptr("10\n"), 10},
		{"zero", ptr("0\n"), 0},
		{"trailing space", ptr("7 \n"), 7},
		{"not a number", ptr("ten\n"), 20},
		{"negative", ptr("-3\n"), 20},
		{"empty", ptr(""), 20},
		{"second line ignored", ptr("5\n6\n"), 5},
		{"too large saturates", ptr("99999999999999999999\n"), 1<<31 - 1},
		{"leading digits count", ptr("3 # three\n"), 3},
		{"digits then letters", ptr("30s\n"), 30},
		{"leading blank", ptr(" 7\n"), 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{}
			if tc.content != nil {
				files["x"] = *tc.content
			}
			got, err := dir(t, files).ReadInt("x", 20)
			if err != nil || got != tc.want {
				t.Errorf("got %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		file  string
		// LineDefault(file, "def"), LineOrMe(file), LineOrMeRequired(file)
		def, orMe string
		req       string
		reqFound  bool
	}{
		{"file present", map[string]string{"me": "me.example\n", "f": "f.example\n"}, "f", "f.example", "f.example", "f.example", true},
		{"me fallback", map[string]string{"me": "me.example\n"}, "f", "def", "me.example", "me.example", true},
		{"nothing: literal name", map[string]string{}, "defaulthost", "def", "defaulthost", "", false},
		{"empty file beats me", map[string]string{"me": "me.example\n", "f": ""}, "f", "", "", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := dir(t, tc.files)
			if got, err := d.LineDefault(tc.file, "def"); err != nil || got != tc.def {
				t.Errorf("LineDefault = %q, %v; want %q", got, err, tc.def)
			}
			if got, err := d.LineOrMe(tc.file); err != nil || got != tc.orMe {
				t.Errorf("LineOrMe = %q, %v; want %q", got, err, tc.orMe)
			}
			if got, ok, err := d.LineOrMeRequired(tc.file); err != nil || got != tc.req || ok != tc.reqFound {
				t.Errorf("LineOrMeRequired = %q, %v, %v; want %q, %v", got, ok, err, tc.req, tc.reqFound)
			}
		})
	}
}

// An unreadable file is an error, never the default.
func TestReadErrors(t *testing.T) {
	d := dir(t, nil)
	// A directory where a file is expected fails to read on every system,
	// root included.
	os.Mkdir(filepath.Join(d.Path, "bad"), 0o755)
	if _, _, err := d.ReadLine("bad"); err == nil {
		t.Error("ReadLine of a directory: no error")
	}
	if _, _, err := d.ReadList("bad"); err == nil {
		t.Error("ReadList of a directory: no error")
	}
	if n, err := d.ReadInt("bad", 3); err == nil || n != 3 {
		t.Errorf("ReadInt of a directory: %d, %v", n, err)
	}
	if _, err := d.LineDefault("bad", "x"); err == nil {
		t.Error("LineDefault of a directory: no error")
	}
	// Neither a FIFO (whose open would wait for a writer) nor a link to
	// /dev/zero (which never ends) is read: the daemons would stop there.
	syscall.Mkfifo(filepath.Join(d.Path, "fifo"), 0o600)
	os.Symlink("/dev/zero", filepath.Join(d.Path, "zero"))
	for _, name := range []string{"fifo", "zero"} {
		if _, _, err := d.ReadLine(name); err == nil {
			t.Errorf("ReadLine of %s: no error", name)
		}
	}
	os.Mkdir(filepath.Join(d.Path, "me"), 0o755)
	if _, err := d.LineOrMe("missing"); err == nil {
		t.Error("LineOrMe with unreadable me: no error")
	}
	if _, _, err := d.LineOrMeRequired("missing"); err == nil {
		t.Error("LineOrMeRequired with unreadable me: no error")
	}
	if os.Geteuid() != 0 {
		os.WriteFile(filepath.Join(d.Path, "secret"), []byte("x\n"), 0o000)
		if _, _, err := d.ReadLine("secret"); err == nil {
			t.Error("unreadable file: no error")
		}
	}
}

func TestExists(t *testing.T) {
	d := dir(t, map[string]string{"holdremote": ""})
	if ok, err := d.Exists("holdremote"); !ok || err != nil {
		t.Errorf("holdremote: %v %v", ok, err)
	}
	if ok, err := d.Exists("holdlocal"); ok || err != nil {
		t.Errorf("holdlocal: %v %v", ok, err)
	}
}

func TestKeyValues(t *testing.T) {
	lines := []string{"Example.COM:alice", "no colon", "x.org:user:with:colons", ":empty-key", "example.com:bob"}
	kv := ParseKeyValues(lines)
	want := []KeyValue{{"example.com", "alice"}, {"x.org", "user:with:colons"}, {"", "empty-key"}, {"example.com", "bob"}}
	if !reflect.DeepEqual(kv, want) {
		t.Errorf("ParseKeyValues = %q", kv)
	}
	m := KeyMap(lines)
	if m["example.com"] != "bob" || m["x.org"] != "user:with:colons" || len(m) != 3 {
		t.Errorf("KeyMap = %q", m)
	}
}

func TestFirstLineListLines(t *testing.T) {
	if got := FirstLine([]byte("a \nb")); got != "a" {
		t.Errorf("FirstLine %q", got)
	}
	if got := ListLines([]byte("#x\n\ny \n")); !reflect.DeepEqual(got, []string{"y"}) {
		t.Errorf("ListLines %q", got)
	}
}

// TestByteOrderMark: a UTF-8 byte order mark at the start of a control
// file (Notepad saves one) is not part of its first line, whichever way
// the file is read: a tlsroutes or smtproutes whose first line carried
// one lost that route (mail to bomtls.test went out in plain text).
func TestByteOrderMark(t *testing.T) {
	const bom = "\xef\xbb\xbf"
	d := dir(t, map[string]string{
		"tlsroutes":  bom + "bomtls.test:encrypt\nother.test:require\n",
		"smtproutes": bom + "bom.test:127.0.0.1:2525\n:relay.example\n",
		"me":         bom + "host.example\n",
		"timeout":    bom + "30\n",
		"comment":    bom + "# a comment\nx\n",
		"inner":      "a\n" + bom + "b\n",
	})
	lines, ok, err := d.ReadList("tlsroutes")
	if m := KeyMap(lines); !ok || err != nil || m["bomtls.test"] != "encrypt" || m["other.test"] != "require" || len(m) != 2 {
		t.Errorf("tlsroutes: %q, %v, %v", m, ok, err)
	}
	lines, _, _ = d.ReadList("smtproutes")
	if m := KeyMap(lines); m["bom.test"] != "127.0.0.1:2525" || m[""] != "relay.example" || len(m) != 2 {
		t.Errorf("smtproutes: %q", m)
	}
	if kv := ParseKeyValues(lines); len(kv) != 2 || kv[0].Key != "bom.test" {
		t.Errorf("smtproutes key-values: %q", kv)
	}
	if s, ok, err := d.ReadLine("me"); s != "host.example" || !ok || err != nil {
		t.Errorf("me: %q, %v, %v", s, ok, err)
	}
	if s, err := d.LineOrMe("bouncehost"); s != "host.example" || err != nil {
		t.Errorf("bouncehost from me: %q, %v", s, err)
	}
	if n, err := d.ReadInt("timeout", 1200); n != 30 || err != nil {
		t.Errorf("timeout: %d, %v", n, err)
	}
	if l, _, _ := d.ReadList("comment"); !reflect.DeepEqual(l, []string{"x"}) {
		t.Errorf("a comment after the mark: %q", l)
	}
	// Only at the very start: elsewhere the bytes are the line's.
	if l, _, _ := d.ReadList("inner"); !reflect.DeepEqual(l, []string{"a", bom + "b"}) {
		t.Errorf("a mark inside: %q", l)
	}
	if got := FirstLine([]byte(bom + "a \nb")); got != "a" {
		t.Errorf("FirstLine %q", got)
	}
	if got := ListLines([]byte(bom + bom + "x\n")); !reflect.DeepEqual(got, []string{bom + "x"}) {
		t.Errorf("ListLines of two marks %q", got)
	}
}
