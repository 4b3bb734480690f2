package lspawn

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

// FuzzLookup: any local part against a fixed users/cdb never panics, and
// a hit yields six parsable fields whose ext ends with the unmatched rest
// of the local part.
func FuzzLookup(f *testing.F) {
	db := memdb{
		"!joe\x00": val("joe", "1001", "100", "/home/joe", "", ""),
		"!list-":   val("lists", "1003", "100", "/home/lists", "-", "l-"),
		"!":        val("alias", "1004", "100", "/a", "-", ""),
		"":         "-",
	}
	f.Add("joe")
	f.Add("list-x")
	f.Add("LIST-\x00")
	f.Add("")
	f.Fuzz(func(t *testing.T, local string) {
		out, ok, err := Lookup(db, local)
		if err != nil || !ok {
			t.Fatalf("%q: ok %v err %v (the \"!\" wildcard matches everything)", local, ok, err)
		}
		if bytes.Count(out, []byte{0}) < 6 && !strings.Contains(local, "\x00") {
			t.Fatalf("%q: %q", local, out)
		}
		if strings.Contains(local, "\x00") {
			return
		}
		fl, ok := ParseFields(out)
		if !ok {
			t.Fatalf("%q: unparsable %q", local, out)
		}
		var want string
		switch fl.User {
		case "joe":
			want = ""
		case "lists":
			want = "l-" + local[5:]
		default:
			want = local
		}
		if fl.Ext != want {
			t.Fatalf("%q: user %s ext %q, want %q", local, fl.User, fl.Ext, want)
		}
	})
}

func FuzzParseFields(f *testing.F) {
	f.Add([]byte("joe\x001001\x00100\x00/home/joe\x00-\x00ext\x00"))
	f.Add([]byte("\x00\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		fl, ok := ParseFields(b)
		if !ok {
			return
		}
		// An id is 32 bits (a negative int past 2^31 where int has 32
		// bits, unixid); (uid_t)-1 is nobody's.
		if uint32(fl.UID) == math.MaxUint32 || uint32(fl.GID) == math.MaxUint32 || strings.Contains(fl.User+fl.Home+fl.Dash+fl.Ext, "\x00") {
			t.Fatalf("%q -> %+v", b, fl)
		}
	})
}
