package install

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/hqmail/hqmail/pkg/admin"
	"github.com/hqmail/hqmail/pkg/control"
	"github.com/hqmail/hqmail/pkg/dotqmail"
	"github.com/hqmail/hqmail/pkg/qhome"
)

// crlfFiles names the control files hqmail's programs read (controlEffects)
// and the alias user's .qmail files (alias/.qmail*, the ones every
// delivery to an alias, root and postmaster goes through) in which a value
// the programs use ends in a CR: a file saved by a Windows editor. The CR
// is part of the value, as in qmail (only spaces and tabs are trimmed): a
// domain of control/locals with it matches no address, and a .qmail line
// "./Maildir/" followed by a CR is no Maildir but an mbox file named CR
// inside Maildir/. qmail-install never changes those files, so this is
// only reported. Files that cannot be read are left to the other lines.
func crlfFiles(root string) []string {
	var out []string
	if !wayBlocked(root, "control/me") {
		var names []string
		for n := range controlEffects {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			p := filepath.Join(root, "control", n)
			// Symbolic links are followed, as the programs follow them
			// (control/ is root's).
			if b, ok := readForCR(p, 0); ok && controlValueEndsInCR(n, b) {
				out = append(out, fmt.Sprintf("control/%s: has CRLF line endings (saved by a Windows editor?): "+
					"the CR is part of the value, as in qmail%s; %s", n, crEffect(n), control.CRLFAdvice(p)))
			}
		}
	}
	if wayBlocked(root, "alias/.qmail-default") {
		return out
	}
	ents, err := os.ReadDir(filepath.Join(root, "alias"))
	if err != nil {
		return out
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".qmail") || !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(root, "alias", e.Name())
		// alias/ is the alias user's: no link there is followed.
		if b, ok := readForCR(p, syscall.O_NOFOLLOW); ok && dotQmailEndsInCR(b) {
			out = append(out, fmt.Sprintf("alias/%s: has CRLF line endings (saved by a Windows editor?): "+
				"the CR is part of each line, as in qmail: a line ./Maildir/ followed by a CR is no Maildir but "+
				"an mbox file named CR inside Maildir/, where mail is hidden, and a program line runs a "+
				"command ending in a CR; %s", e.Name(), control.CRLFAdvice(p)))
		}
	}
	return out
}

// controlValueEndsInCR reports whether a value the programs take from
// control file name, whose contents are b, ends in a CR. The file is read
// as they read it, by its kind in qmail-showctl's table
// (admin.ControlValueKind): the first line of a single-value file (a CR
// on a later line is never read), each line of a list file but comments
// and empty lines. A number (only its leading digits count), a list whose
// reader trims each value (smtproutes, tlsroutes, outgoingip,
// relayclients), the hold flags (whose reader drops the CR), startheld
// (only its presence counts) and the PEM and cdb files are not judged.
func controlValueEndsInCR(name string, b []byte) bool {
	var vals []string
	switch k, _ := admin.ControlValueKind(name); k {
	case admin.FirstLine:
		vals = []string{control.FirstLine(b)}
	case admin.ListLines:
		vals = control.ListLines(b)
	}
	for _, v := range vals {
		if strings.HasSuffix(v, "\r") {
			return true
		}
	}
	return false
}

// dotQmailEndsInCR reports whether a line of the .qmail file b, as
// qmail-local reads it (dotqmail.Parse), ends in a CR: every line is used
// but comments and blank lines. A line of only a CR is no blank line but
// a forward.
func dotQmailEndsInCR(b []byte) bool {
	for _, l := range dotqmail.Parse(b) {
		if l.Kind != dotqmail.Comment && l.Kind != dotqmail.Blank && bytes.HasSuffix(l.Text, []byte("\r")) {
			return true
		}
	}
	return false
}

// crEffect says what a CR at the end of the lines of control file name
// costs, after ": "; "" where no word of its own is given.
func crEffect(name string) string {
	switch {
	case name == "me":
		return ": it goes into SMTP replies, Received: lines and Message-IDs, and into every host name that defaults to me"
	case name == "locals":
		return ": its domains match no address, and local mail is sent away as remote"
	case name == "rcpthosts", name == "morercpthosts":
		return ": its domains match no recipient, and qmail-smtpd refuses their mail"
	case name == "defaultdelivery":
		return ": ./Maildir/ followed by a CR is no Maildir but an mbox file named CR inside Maildir/, where mail is hidden"
	case name == "smtpauth":
		return ": each password ends in a CR, and the smarthost refuses the login"
	}
	return ""
}

// crScanLimit bounds how much of a file readForCR reads: a control or
// .qmail file is a few lines; one larger than this is judged by its
// start.
const crScanLimit = 16 << 20

// readForCR returns the start of the regular file p (opened with the
// extra flags), up to crScanLimit bytes. A file that cannot be opened as
// a regular file, or read, reports false.
func readForCR(p string, flags int) ([]byte, bool) {
	f, err := qhome.OpenRegular(p, os.O_RDONLY|flags)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, crScanLimit))
	return b, err == nil
}
