// Package users compiles QMAILHOME/users/assign into QMAILHOME/users/cdb,
// the database qmail-lspawn consults before qmail-getpw (spec/delivery.md
// §2). qmail-newu and qmail-install both use it.
//
// assign format: lines ended by '\n', the list ended by a line ".":
//
//	=local:user:uid:gid:home:dash:ext:
//	+prefix:user:uid:gid:home:dash:pre:
//
// Records of the database:
//   - "!" + lower(local) + "\0" for an exact line,
//   - "!" + lower(prefix) for a wildcard line,
//   - "" = the last characters (original case, each once) of the non-empty
//     wildcard prefixes.
//
// The value is the six fields after the first colon joined by NUL:
// "user\0uid\0gid\0home\0dash\0ext", qmail-newu's layout, so that a
// wildcard hit can append the rest of the local part to the ext field (and
// a cdb written here serves qmail's own qmail-lspawn). Of two lines with
// the same key the first wins. Lowercasing is ASCII only.
package users

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/hqmail/hqmail/pkg/address"
	"github.com/hqmail/hqmail/pkg/cdb"
	"github.com/hqmail/hqmail/pkg/control"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/unixid"
)

// ErrFormat is a malformed users/assign.
var ErrFormat = errors.New("bad format in users/assign")

// Compile parses an assign file and returns the database records in the
// order qmail-newu writes them (the wildcard-set record last).
func Compile(assign []byte) ([]cdb.Record, error) {
	var recs []cdb.Record
	seen := map[string]bool{}
	var wild []byte
	// A byte order mark (an editor's) is no part of the first line: kept,
	// it made a catch-all "+:" line an exact entry for a name of its own.
	rest := control.StripBOM(assign)
	for lineNo := 1; ; lineNo++ {
		i := bytes.IndexByte(rest, '\n')
		line := rest
		if i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		}
		// Any line starting with a dot ends the file, as in qmail-newu:
		// "." without a newline, ".\r" of a file edited with CRLF, ". ".
		if len(line) > 0 && line[0] == '.' {
			break
		}
		if i < 0 {
			return nil, ErrFormat // end of file before the "." line
		}
		if len(line) == 0 || bytes.IndexByte(line, 0) >= 0 {
			return nil, ErrFormat
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return nil, ErrFormat
		}
		// The six fields after the first colon, each ended by a colon.
		fields := line[colon+1:]
		var val []byte
		n := 0
		for n < 6 {
			j := bytes.IndexByte(fields, ':')
			if j < 0 {
				return nil, ErrFormat
			}
			if n == 1 || n == 2 {
				if err := checkID(fields[:j]); err != nil {
					return nil, fmt.Errorf("%w: line %d: %s %v", ErrFormat, lineNo, []string{"", "uid", "gid"}[n], err)
				}
			}
			if n > 0 {
				val = append(val, 0)
			}
			val = append(val, fields[:j]...)
			fields = fields[j+1:]
			n++
		}
		name := line[1:colon]
		var key []byte
		if line[0] == '+' {
			key = append([]byte{'!'}, address.LowerASCII(string(name))...)
			if len(name) > 0 {
				c := name[len(name)-1]
				if bytes.IndexByte(wild, c) < 0 {
					wild = append(wild, c)
				}
			}
		} else {
			key = append([]byte{'!'}, address.LowerASCII(string(name))...)
			key = append(key, 0)
		}
		if seen[string(key)] {
			continue
		}
		seen[string(key)] = true
		recs = append(recs, cdb.Record{Key: key, Data: val})
	}
	recs = append(recs, cdb.Record{Key: []byte{}, Data: wild})
	return recs, nil
}

// checkID refuses a uid or gid field that is not bare decimal digits
// (leading zeros allowed) worth less than (uid_t)-1. qmail's qmail-newu
// takes any text there and qmail-lspawn reads its leading digits, none
// giving 0: "1001 " is uid 1001 and "+1001" is root, refused at every
// delivery. The admin learns it when the database is built (by
// qmail-newu or qmail-install), not from deferred mail.
func checkID(f []byte) error {
	id := string(f)
	if _, ok := unixid.Parse(id); !ok || strings.Trim(id, "0123456789") != "" {
		return fmt.Errorf("%q is not a decimal number below %d", id, uint64(unixid.None))
	}
	return nil
}

// Build reads ROOT/users/assign and writes ROOT/users/cdb atomically
// (a temporary users/cdb.tmp.RANDOM, fsync, rename; mode 0644), then
// fsyncs users/.
func Build(root string) error {
	dir := filepath.Join(root, "users")
	b, err := os.ReadFile(filepath.Join(dir, "assign"))
	if err != nil {
		return err
	}
	recs, err := Compile(b)
	if err != nil {
		return err
	}
	if err := cdb.WriteFile(filepath.Join(dir, "cdb"), 0o644, recs); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir is qhome.SyncDir on a file system that may not flush
// directories (EINVAL: nothing to flush).
func syncDir(dir string) error {
	if err := qhome.SyncDir(dir); err != nil && !errors.Is(err, syscall.EINVAL) {
		return err
	}
	return nil
}
