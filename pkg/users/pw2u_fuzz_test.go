package users

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/pkg/address"
	"github.com/hqmail/hqmail/pkg/admin"
	"github.com/hqmail/hqmail/pkg/cdb"
	"github.com/hqmail/hqmail/pkg/spawn/lspawn"
)

// memCDB builds a database of recs in memory, as Build writes users/cdb.
func memCDB(t *testing.T, recs []cdb.Record) *cdb.Reader {
	t.Helper()
	var buf bytes.Buffer
	w := cdb.NewWriter(&buf)
	for _, r := range recs {
		if err := w.Add(r.Key, r.Data); err != nil {
			t.Fatal(err)
		}
	}
	hdr, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	copy(b, hdr[:])
	db, err := cdb.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// assignLine is one line qmail-pw2u wrote: "=L:user:uid:gid:home:dash:ext:"
// or "+P:...".
type assignLine struct {
	wild                                  bool
	name, user, uid, gid, home, dash, ext string
}

// FuzzPw2uCompileLookup: what qmail-pw2u writes (passwd, users/mailnames
// and users/subusers fuzzed; -H, with -U/-u and -c/-C from flags) always
// compiles (qmail-newu), and qmail-lspawn's lookup in the result finds
// every local part written, with the user, uid, gid, home, dash and ext of
// its line (of the first line of that key: the first wins, as the package
// says), and a local part plus "-ext" through the longest "+prefix-" line.
func FuzzPw2uCompileLookup(f *testing.F) {
	for _, s := range []struct {
		passwd, mailnames, subusers string
		flags                       uint8
		ext                         string
	}{
		{"alice:x:1000:1000:A:/home/alice:/bin/sh\nbob:x:1001:100::/home/bob:/bin/sh\n", "", "", 0, "list"},
		{"root:x:0:0::/root:/bin/sh\nalias:x:7790:2108::/var/qmail/alias:/bin/true\n", "", "", 4, ""},
		{"Alice:x:1000:1000::/home/alice:/bin/sh\n", "", "", 1, "X"},
		{"alice:x:1000:1000::/home/alice:/bin/sh\n", "alice:postmaster:Abuse\n", "", 0, "a-b"},
		{"alice:x:1000:1000::/home/alice:/bin/sh\n", "", "sub:alice:pre:\n", 0, "z"},
		{"alice:x:1000:1000::/home/alice:/bin/sh\nalice-x:x:1002:1002::/home/ax:/bin/sh\n", "", "", 0, "x-y"},
		{"alice:x:1000:1000::/home/alice:/bin/sh\n", "", "", 2, "e"},
		{"a:x:0001:02::/h:/s\r\n#c\n\nb:x:4294967294:1::/h2:\n", "", "", 0, ""},
		{"a:x:1:1::/h:/s\na:x:2:2::/h2:/s\n", "", "", 0, ""},
		// Found by this target: a NUL in mailnames or subusers went into
		// users/assign (qmail-newu refused it), and a uid of -1 written
		// with a leading zero was not skipped.
		{"a:x:1:1::/h:", "a:b\x00c", "", '0', ""},
		{"a:x:1:1::/h:", "", "s\x00:a:p", '0', ""},
		{"a:x:04294967295:1::/h:", "", "", '0', ""},
	} {
		f.Add(s.passwd, s.mailnames, s.subusers, s.flags, s.ext)
	}
	dir := f.TempDir()
	put := func(t *testing.T, name, data string) {
		p := filepath.Join(dir, name)
		if data == "" {
			if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			return
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, passwd, mailnames, subusers string, flags uint8, ext string) {
		put(t, "mailnames", mailnames)
		put(t, "subusers", subusers)
		o := admin.Pw2uOptions{AllowUpper: flags&1 != 0, ExtensionLines: flags&2 == 0, UsersDir: dir}
		if flags&4 != 0 {
			o.AliasHome = "/var/qmail/alias"
		}
		var out bytes.Buffer
		if err := admin.Pw2u(strings.NewReader(passwd), &out, io.Discard, o); err != nil {
			return // refused input: qmail-pw2u writes nothing usable
		}
		recs, err := Compile(out.Bytes())
		if err != nil {
			t.Fatalf("qmail-newu refuses what qmail-pw2u wrote: %v\n%q", err, out.String())
		}
		db := memCDB(t, recs)

		var lines []assignLine
		exact := map[string]assignLine{} // lower(L): the first "=L" line
		wild := map[string]assignLine{}  // lower(P): the first "+P" line
		for _, l := range strings.Split(out.String(), "\n") {
			if l == "." {
				break
			}
			p := strings.Split(l[1:], ":")
			if len(p) != 8 || p[7] != "" || l[0] != '=' && l[0] != '+' {
				t.Fatalf("qmail-pw2u wrote %q", l)
			}
			a := assignLine{l[0] == '+', p[0], p[1], p[2], p[3], p[4], p[5], p[6]}
			lines = append(lines, a)
			m := exact
			if a.wild {
				m = wild
			}
			if _, dup := m[address.LowerASCII(a.name)]; !dup {
				m[address.LowerASCII(a.name)] = a
			}
		}
		check := func(local string, want assignLine, wantExt string) {
			t.Helper()
			v, ok, err := lspawn.Lookup(db, local)
			if err != nil || !ok {
				t.Fatalf("lookup of %q: found %v, %v\n%q", local, ok, err, out.String())
			}
			fl, ok := lspawn.ParseFields(v)
			if !ok {
				t.Fatalf("lookup of %q: fields %q do not parse\n%q", local, v, out.String())
			}
			uid, _ := strconv.ParseUint(want.uid, 10, 32)
			gid, _ := strconv.ParseUint(want.gid, 10, 32)
			if fl.User != want.user || fl.UID != int(uid) || fl.GID != int(gid) || fl.Home != want.home ||
				fl.Dash != want.dash || fl.Ext != wantExt {
				t.Fatalf("lookup of %q: %+v, want %+v ext %q\n%q", local, *fl, want, wantExt, out.String())
			}
		}
		for _, a := range lines {
			if !a.wild {
				check(a.name, exact[address.LowerASCII(a.name)], a.ext)
			}
		}
		if strings.IndexByte(ext, 0) >= 0 {
			return
		}
		for i, a := range lines {
			if i >= 8 {
				break
			}
			q := a.name + "-" + ext
			if e, ok := exact[address.LowerASCII(q)]; ok {
				check(q, e, e.ext)
				continue
			}
			best, n := assignLine{}, -1
			for p, w := range wild {
				if len(p) > n && strings.HasPrefix(address.LowerASCII(q), p) {
					best, n = w, len(p)
				}
			}
			if n >= 0 {
				check(q, best, best.ext+q[n:])
			} else if _, ok, err := lspawn.Lookup(db, q); ok || err != nil {
				t.Fatalf("lookup of %q: found %v, %v; no line covers it\n%q", q, ok, err, out.String())
			}
		}
	})
}
