// Package control reads qmail's control files (QMAILHOME/control/NAME) with
// qmail's rules. Every read has three outcomes, as in qmail's own reader:
// found (value, true, nil), missing (zero value, false, nil: the caller uses
// its default) and error (the file exists but cannot be read: the caller must
// fail temporarily, never fall back to the default).
//
// Rules:
//   - A single-value file is its first line with trailing spaces, tabs and
//     the newline removed. An existing empty file is the empty value.
//   - A list file is every line with trailing spaces and tabs removed,
//     skipping empty lines and lines starting with '#'.
//   - An integer file is its first line as an unsigned decimal number; a
//     value that does not parse counts as missing (the default is kept).
//   - Where qmail defaults a host name to "me", and "me" is missing too, the
//     literal file name is the value (LineOrMe).
//   - A UTF-8 byte order mark at the very start of a file (Notepad writes
//     one) is not part of its first line: FirstLine and ListLines, which
//     every read goes through, drop it (StripBOM), so that a first line
//     "\xef\xbb\xbfexample.test:encrypt" is example.test's line, not junk.
package control

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/hqmail/hqmail/pkg/address"
	"github.com/hqmail/hqmail/pkg/idna"
	"github.com/hqmail/hqmail/pkg/qhome"
)

// LockName is the file in the control directory whose flock is qmailctl's
// lock on the hold flags and linkwant (pkg/ctl lockDir): mode 0600, so
// that no other user can hold it. It is no control file: qmail-install's
// checks and qmail-showctl pass it by.
const LockName = "lock"

// Dir is a control directory.
type Dir struct {
	Path string // absolute path of QMAILHOME/control
}

// Open returns the control directory of the qmail tree at root.
func Open(root string) *Dir { return &Dir{Path: filepath.Join(root, "control")} }

// read returns the file's bytes; missing reports (nil, false, nil).
func (d *Dir) read(name string) ([]byte, bool, error) {
	b, err := qhome.ReadRegular(filepath.Join(d.Path, name))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, false, nil
		}
		return nil, false, err
	}
	return b, true, nil
}

// trimRight removes trailing spaces, tabs and newlines.
func trimRight(s string) string { return strings.TrimRight(s, " \t\n") }

// bom is the UTF-8 encoding of U+FEFF, the byte order mark.
const bom = "\xef\xbb\xbf"

// StripBOM removes a UTF-8 byte order mark from the start of a file's
// contents, the one place every control file loses it.
func StripBOM(b []byte) []byte { return bytes.TrimPrefix(b, []byte(bom)) }

// FirstLine applies the single-value rule to the contents of a file (a
// byte order mark at its start dropped).
func FirstLine(b []byte) string {
	b = StripBOM(b)
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	return trimRight(string(b))
}

// ListLines applies the list rule to the contents of a file (a byte
// order mark at its start dropped).
func ListLines(b []byte) []string {
	var out []string
	for _, line := range strings.Split(string(StripBOM(b)), "\n") {
		line = strings.TrimRight(line, " \t")
		if line == "" || line[0] == '#' {
			continue
		}
		out = append(out, line)
	}
	return out
}

// ReadLine reads a single-value file.
func (d *Dir) ReadLine(name string) (string, bool, error) {
	b, ok, err := d.read(name)
	if !ok || err != nil {
		return "", ok, err
	}
	return FirstLine(b), true, nil
}

// ReadList reads a list file.
func (d *Dir) ReadList(name string) ([]string, bool, error) {
	b, ok, err := d.read(name)
	if !ok || err != nil {
		return nil, ok, err
	}
	return ListLines(b), true, nil
}

// ReadInt reads an integer file as qmail's control_readint does: the
// decimal digits at the start of the first line ("3 # three" is 3). A
// missing file, or a first line that does not start with a digit ("abc",
// "-5", " 7"), yields def. Values saturate at 2^31-1.
func (d *Dir) ReadInt(name string, def int) (int, error) {
	n, err := d.ReadUint(name, uint64(def))
	return int(min(n, 1<<31-1)), err
}

// ReadUint is ReadInt for values up to 2^62.
func (d *Dir) ReadUint(name string, def uint64) (uint64, error) {
	s, ok, err := d.ReadLine(name)
	if err != nil || !ok {
		return def, err
	}
	n, digits := ScanUlong(s)
	if digits == 0 {
		return def, nil
	}
	return n, nil
}

// ScanUlong reads the decimal digits at the start of s, as qmail's
// scan_ulong: their value (saturating at 2^62) and how many there were.
func ScanUlong(s string) (uint64, int) {
	var n uint64
	i := 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		if n < 1<<62/10 {
			n = n*10 + uint64(s[i]-'0')
		} else {
			n = 1 << 62
		}
	}
	return n, i
}

// LineDefault reads a single-value file, returning def when it is missing.
func (d *Dir) LineDefault(name, def string) (string, error) {
	s, ok, err := d.ReadLine(name)
	if err != nil {
		return "", err
	}
	if !ok {
		return def, nil
	}
	return s, nil
}

// Me reads control/me.
func (d *Dir) Me() (string, bool, error) { return d.ReadLine("me") }

// LineOrMe reads a host-name file whose default is "me", and whose default
// when "me" is missing as well is the file's own name (qmail's behaviour for
// defaultdomain, defaulthost, plusdomain, idhost, bouncehost, envnoathost,
// doublebouncehost).
func (d *Dir) LineOrMe(name string) (string, error) {
	s, ok, err := d.ReadLine(name)
	if err != nil || ok {
		return s, err
	}
	me, ok, err := d.Me()
	if err != nil || ok {
		return me, err
	}
	return name, nil
}

// Locals reads control/locals as a set of domains in idna.Fold form (look
// a domain up by its Fold: "bücher.example" and "xn--bcher-kva.example"
// are one domain, and ASCII letters fold, as in qmail); a missing
// file is the set of me, when haveMe (qmail-send passes the me it read at
// start, so that a HUP does not see a new one). ok is false when there is
// neither.
func (d *Dir) Locals(me string, haveMe bool) (set map[string]bool, ok bool, err error) {
	l, ok, err := d.ReadList("locals")
	if err != nil {
		return nil, false, err
	}
	if !ok {
		if !haveMe {
			return nil, false, nil
		}
		l = []string{me}
	}
	set = make(map[string]bool, len(l))
	for _, x := range l {
		set[idna.Fold(x)] = true // either spelling of an IDN
	}
	return set, true, nil
}

// LineOrMeRequired is LineOrMe for the files that have no usable default
// without "me" (locals, helohost, smtpgreeting, localiphost): it reports
// found=false when neither the file nor "me" exists.
func (d *Dir) LineOrMeRequired(name string) (string, bool, error) {
	s, ok, err := d.ReadLine(name)
	if err != nil || ok {
		return s, ok, err
	}
	return d.Me()
}

// Exists reports whether a control file exists. Any stat error other than
// "does not exist" is returned.
func (d *Dir) Exists(name string) (bool, error) {
	_, err := os.Stat(filepath.Join(d.Path, name))
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, err
}

// KeyValue is one line of a "key:value" file (virtualdomains, smtproutes).
type KeyValue struct{ Key, Value string }

// ParseKeyValues splits list lines at the first ':'; lines without ':' are
// skipped. Keys are lowercased (matching is case-insensitive).
func ParseKeyValues(lines []string) []KeyValue {
	var out []KeyValue
	for _, l := range lines {
		i := strings.IndexByte(l, ':')
		if i < 0 {
			continue
		}
		out = append(out, KeyValue{Key: address.LowerASCII(l[:i]), Value: l[i+1:]})
	}
	return out
}

// KeyMap builds a lookup map from key:value lines; of two lines with the same
// key, the last one wins.
func KeyMap(lines []string) map[string]string {
	m := make(map[string]string)
	for _, kv := range ParseKeyValues(lines) {
		m[kv.Key] = kv.Value
	}
	return m
}
