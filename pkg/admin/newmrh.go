package admin

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hqmail/hqmail/pkg/cdb"
	"github.com/hqmail/hqmail/pkg/control"
	"github.com/hqmail/hqmail/pkg/idna"
	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qhome"
)

// MoreRcptHosts reads the list in control/morercpthosts and returns the cdb
// records qmail-smtpd looks hosts up in: one key per line, in idna.Fold
// form (lowercased, an IDN as its A-labels), with empty data. Lines follow the list rule of pkg/control (trailing blanks
// removed, blank lines and '#' comments skipped). Duplicates are kept once.
func MoreRcptHosts(data []byte) []cdb.Record {
	seen := map[string]bool{}
	var recs []cdb.Record
	for _, l := range control.ListLines(data) {
		k := idna.Fold(l) // the form qmail-smtpd looks domains up in
		if seen[k] {
			continue
		}
		seen[k] = true
		recs = append(recs, cdb.Record{Key: []byte(k), Data: []byte{}})
	}
	return recs
}

// NewmrhMain is qmail-newmrh: control/morercpthosts of root becomes
// control/morercpthosts.cdb (mode 0644), written as morercpthosts.cdb.tmp,
// synced and renamed, so qmail-smtpd sees the old or the new table, never a
// partial one. Exit 0, or 111 with "qmail-newmrh: fatal: ..." on stderr.
func NewmrhMain(root string, stderr io.Writer) int {
	dir := control.Open(root).Path
	src := filepath.Join(dir, "morercpthosts")
	data, err := readWhole(src)
	if err != nil {
		fmt.Fprintf(stderr, "qmail-newmrh: fatal: unable to read control/morercpthosts: %v\n", qerr.Bare(err))
		return 111
	}
	if err := cdb.WriteFile(filepath.Join(dir, "morercpthosts.cdb"), 0644, MoreRcptHosts(data)); err != nil {
		fmt.Fprintf(stderr, "qmail-newmrh: fatal: unable to write control/morercpthosts.cdb: %v\n", err)
		return 111
	}
	return 0
}

// readWhole reads a list an admin keeps (control/morercpthosts, the
// users/ files of qmail-pw2u) as qmail-newu reads users/assign: through
// qhome.OpenRegular, so that a FIFO, a device or a directory put there is
// refused at once ("not a regular file", "is a directory") instead of
// waiting for a writer for ever; /dev/null reads as empty. No size cap:
// such a list grows with the hosts or users.
func readWhole(name string) ([]byte, error) {
	f, err := qhome.OpenRegular(name, os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}
