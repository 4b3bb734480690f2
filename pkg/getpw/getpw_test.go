package getpw

import (
	"errors"
	"os"
	"syscall"
	"testing"

	"github.com/hqmail/hqmail/pkg/unixid"
)

type fakePW map[string]*Entry

func (f fakePW) Lookup(name string) (*Entry, error) {
	if name == "broken" {
		return nil, errors.New("passwd unreadable")
	}
	return f[name], nil
}

func TestFind(t *testing.T) {
	pw := fakePW{
		"joe":                              {Name: "joe", UID: 1001, GID: 100, Home: "/home/joe"},
		"joe-list":                         {Name: "joe-list", UID: 1002, GID: 100, Home: "/home/joelist"},
		"root":                             {Name: "root", UID: 0, GID: 0, Home: "/root"},
		"nohome":                           {Name: "nohome", UID: 1003, GID: 100, Home: "/missing"},
		"notmine":                          {Name: "notmine", UID: 1004, GID: 100, Home: "/home/joe"},
		"nfs":                              {Name: "nfs", UID: 1005, GID: 100, Home: "/stale"},
		"alias":                            {Name: "alias", UID: 7790, GID: 2108, Home: "/var/qmail/alias"},
		"a23456789012345678901234567890b":  {Name: "a23456789012345678901234567890b", UID: 1006, GID: 1, Home: "/home/long"},
		"a234567890123456789012345678901b": {Name: "a234567890123456789012345678901b", UID: 1007, GID: 1, Home: "/home/long"},
	}
	owner := func(p string) (int, error) {
		switch p {
		case "/home/joe":
			return 1001, nil
		case "/home/joelist":
			return 1002, nil
		case "/root":
			return 0, nil
		case "/home/long":
			return 1006, nil
		case "/stale":
			return 0, &os.PathError{Op: "stat", Path: p, Err: syscall.ESTALE}
		}
		return 0, &os.PathError{Op: "stat", Path: p, Err: syscall.ENOENT}
	}
	tests := []struct {
		local string
		want  string
		code  int
	}{
		{"joe", "joe\x001001\x00100\x00/home/joe\x00\x00\x00", 0},
		{"Joe", "joe\x001001\x00100\x00/home/joe\x00\x00\x00", 0},
		{"joe-foo", "joe\x001001\x00100\x00/home/joe\x00-\x00foo\x00", 0},
		{"joe-Foo-Bar", "joe\x001001\x00100\x00/home/joe\x00-\x00Foo-Bar\x00", 0},
		{"joe-list-x", "joe-list\x001002\x00100\x00/home/joelist\x00-\x00x\x00", 0},
		{"joe-list", "joe-list\x001002\x00100\x00/home/joelist\x00\x00\x00", 0},
		{"joe-", "joe\x001001\x00100\x00/home/joe\x00-\x00\x00", 0},
		{"joey", "alias\x007790\x002108\x00/var/qmail/alias\x00-\x00joey\x00", 0},
		{"root", "alias\x007790\x002108\x00/var/qmail/alias\x00-\x00root\x00", 0},
		{"nohome", "alias\x007790\x002108\x00/var/qmail/alias\x00-\x00nohome\x00", 0},
		{"notmine", "alias\x007790\x002108\x00/var/qmail/alias\x00-\x00notmine\x00", 0},
		{"nfs-x", "", ExitNFS},
		{"broken", "", ExitSys},
		{"a23456789012345678901234567890b", "a23456789012345678901234567890b\x001006\x001\x00/home/long\x00\x00\x00", 0},
		{"a234567890123456789012345678901b", "alias\x007790\x002108\x00/var/qmail/alias\x00-\x00a234567890123456789012345678901b\x00", 0},
		{"-joe", "alias\x007790\x002108\x00/var/qmail/alias\x00-\x00-joe\x00", 0},
	}
	for _, tc := range tests {
		t.Run(tc.local, func(t *testing.T) {
			got, code := Find(pw, owner, Alias, tc.local)
			if code != tc.code || string(got) != tc.want {
				t.Errorf("Find(%q) = %q, %d; want %q, %d", tc.local, got, code, tc.want, tc.code)
			}
		})
	}
	if _, code := Find(fakePW{}, owner, Alias, "x"); code != ExitNoAlias {
		t.Errorf("no alias: code %d", code)
	}
}

// TestBigIDs: ids past 2^31-1 go out as the kernel's unsigned numbers,
// also where int has 32 bits (make test runs this package as 386 too).
func TestBigIDs(t *testing.T) {
	uid, _ := unixid.Parse("3000000000")
	gid, _ := unixid.Parse("4294967294")
	pw := fakePW{"big": {Name: "big", UID: uid, GID: gid, Home: "/home/big"}}
	owner := func(string) (int, error) { return uid, nil }
	got, code := Find(pw, owner, Alias, "big-x")
	want := "big\x003000000000\x004294967294\x00/home/big\x00-\x00x\x00"
	if code != 0 || string(got) != want {
		t.Errorf("Find(big-x) = %q, %d; want %q", got, code, want)
	}
}

func TestMainUsage(t *testing.T) {
	if code := Main(nil, os.Stdout, ""); code != ExitUsage {
		t.Errorf("no argument: %d", code)
	}
}

func TestAliasHomeOverride(t *testing.T) {
	pw := fakePW{"alias": {Name: "alias", UID: 7790, GID: 2108, Home: "/stale/home"}}
	b, code := Find(aliasAt{pw, "/tree/alias"}, func(string) (int, error) { return 0, os.ErrNotExist }, Alias, "nobody-here")
	if code != 0 || string(b) != "alias\x007790\x002108\x00/tree/alias\x00-\x00nobody-here\x00" {
		t.Errorf("got %q, %d", b, code)
	}
}

func TestSystemLookup(t *testing.T) {
	e, err := System{}.Lookup("root")
	if err != nil || e == nil || e.UID != 0 {
		t.Skipf("no root in passwd here: %v %v", e, err)
	}
	if e, err := (System{}).Lookup("no-such-user-hqmail"); e != nil || err != nil {
		t.Errorf("unknown user: %v %v", e, err)
	}
}
