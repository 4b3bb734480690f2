package install

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/hqmail/hqmail/pkg/qhome"
)

// crIgnored are the control files of controlEffects whose CRs do no
// harm: the hold flags (their reader drops a CR at the end of a line),
// startheld (only its presence counts) and the files parsed as PEM or
// cdb, not as lines.
var crIgnored = map[string]bool{
	"holdlocal":         true,
	"holdremote":        true,
	"startheld":         true,
	"morercpthosts.cdb": true,
	"servercert.pem":    true,
	"tlsca":             true,
}

// crlfAdvice ends the line of a file with CRLF line endings: how to
// convert it in place (p, the path the administrator runs it on).
func crlfAdvice(p string) string {
	return "convert it with sed -i 's/\\r$//' " + shellWord(p)
}

// crlfFiles names the control files hqmail's programs read (controlEffects,
// but crIgnored), and the alias user's .qmail files (alias/.qmail*, the
// ones every delivery to an alias, root and postmaster goes through), in
// which a line ends in a CR: saved by a Windows editor. The CR is part of
// the line, as in qmail (only spaces and tabs are trimmed): a domain of
// control/locals with it matches no address, and a .qmail line
// "./Maildir/" followed by a CR is no Maildir but an mbox file named CR
// inside Maildir/. qmail-install never changes those files, so this is
// only reported. Files that cannot be read are left to the other lines.
func crlfFiles(root string) []string {
	var out []string
	if !wayBlocked(root, "control/me") {
		var names []string
		for n := range controlEffects {
			if !crIgnored[n] && !intControls[n] {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		for _, n := range names {
			p := filepath.Join(root, "control", n)
			// Symbolic links are followed, as the programs follow them
			// (control/ is root's).
			if lineEndsInCR(p, 0) {
				out = append(out, fmt.Sprintf("control/%s: has CRLF line endings (saved by a Windows editor?): "+
					"the CR is part of the value, as in qmail%s; %s", n, crEffect(n), crlfAdvice(p)))
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
		if lineEndsInCR(p, syscall.O_NOFOLLOW) {
			out = append(out, fmt.Sprintf("alias/%s: has CRLF line endings (saved by a Windows editor?): "+
				"the CR is part of each line, as in qmail: a line ./Maildir/ followed by a CR is no Maildir but "+
				"an mbox file named CR inside Maildir/, where mail is hidden, and a program line runs a "+
				"command ending in a CR; %s", e.Name(), crlfAdvice(p)))
		}
	}
	return out
}

// intControls are the control files read as a number: only the
// leading digits count, so a CR after them changes nothing and is not
// reported (-check would fail for it).
var intControls = map[string]bool{
	"concurrencylocal": true, "concurrencyremote": true, "databytes": true,
	"localcache": true, "queuelifetime": true, "smtpcache": true,
	"timeoutconnect": true, "timeoutremote": true, "timeoutsmtpd": true,
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

// crScanLimit bounds how much of a file lineEndsInCR reads: a control or
// .qmail file is a few lines; one larger than this is judged by its
// start.
const crScanLimit = 16 << 20

// lineEndsInCR reports whether the regular file p (opened with the extra
// flags) has a line ending in a CR: a CR before a newline or at the end.
// A file that cannot be opened as a regular file, or read, reports false.
func lineEndsInCR(p string, flags int) bool {
	f, err := qhome.OpenRegular(p, os.O_RDONLY|flags)
	if err != nil {
		return false
	}
	defer f.Close()
	r := bufio.NewReader(io.LimitReader(f, crScanLimit))
	prevCR := false
	for {
		c, err := r.ReadByte()
		if err != nil {
			return err == io.EOF && prevCR
		}
		if prevCR && c == '\n' {
			return true
		}
		prevCR = c == '\r'
	}
}

// shellWord quotes s for a shell command line when it holds anything but
// letters, digits and the punctuation of ordinary paths.
func shellWord(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+,:@%=") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
