package aliases

import (
	"strings"

	"github.com/hqmail/hqmail/pkg/address"
	"github.com/hqmail/hqmail/pkg/cdb"
)

// DBFile is the compiled database, relative to the qmail root.
const DBFile = "etc/aliases.cdb"

// SourceControl names the control file holding the path of the aliases
// file; without it the source is DefaultSource.
const SourceControl = "aliases"

// DefaultSource is the aliases file newaliases reads by default.
const DefaultSource = "/etc/aliases"

// Records turns aliases into cdb records: key = the name as splitName
// gives it (ASCII letters lowercased), data = the targets joined by NUL.
// A record with key "" holds the source file name, so fastforward can
// name it in messages.
func Records(as []Alias, source string) []cdb.Record {
	recs := make([]cdb.Record, 0, len(as)+1)
	recs = append(recs, cdb.Record{Key: []byte{}, Data: []byte(source)})
	for _, a := range as {
		recs = append(recs, cdb.Record{Key: []byte(a.Name), Data: []byte(strings.Join(a.Targets, "\x00"))})
	}
	return recs
}

// Lookup finds name in a compiled database, its ASCII letters folded as
// qmail folds a local part (address.LowerASCII); every other byte is
// compared as it is. A database written before keeps working: an ASCII
// name has the same key as with Unicode folding.
// The empty name is no alias: its record is the source file's name.
func Lookup(db *cdb.Reader, name string) ([]string, bool, error) {
	if name == "" {
		return nil, false, nil
	}
	d, ok, err := db.Get([]byte(address.LowerASCII(name)))
	if err != nil || !ok {
		return nil, ok, err
	}
	return strings.Split(string(d), "\x00"), true, nil
}
