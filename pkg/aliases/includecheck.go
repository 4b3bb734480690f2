package aliases

import (
	"fmt"
	"os/user"
	"strconv"
	"strings"

	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/unixid"
)

// newaliases warns ahead of what fastforward will do with the :include:
// files of the aliases at delivery, reading them as fastforward does
// (Expander, ReadInclude: the same walk, trust rule and scanner), for
// the user fastforward runs as: program, file and Maildir lines it will
// skip, targets it will skip for their syntax, a file it takes for a
// mailbox, and a file that will defer or bounce every message (missing,
// unreadable for that user, writable by others, not a regular file, too
// large, an :include: loop, nesting too deep, too many files or bytes
// in all). Each alias is checked as one delivery to it: an Expander run
// of its own, each file read once in it (as fastforward reads it), and
// bounded as fastforward is (MaxIncludeFiles, MaxIncludeTotal). The files
// are read as they are now; fastforward reads them again at each
// delivery.

// userName is "uid N (name)", or "uid N" when the name is unknown.
func userName(uid int) string {
	s := "uid " + unixid.Format(uid)
	if u, err := user.LookupId(unixid.Format(uid)); err == nil && u.Username != "" {
		s += " (" + u.Username + ")"
	}
	return s
}

// includeCheck gathers the warnings; each file, and each error, is
// named once.
type includeCheck struct {
	who    Deliverer
	warned map[string]bool
	out    []string
}

// includeWarnings returns the warnings for the :include: files named by
// the aliases and by the files they name, in the form
// "FILE:LINE: warning: alias "NAME": ..." of the alias that names them
// first, for the deliverer who.
func includeWarnings(as []Alias, who Deliverer) []string {
	c := &includeCheck{who: who, warned: map[string]bool{}}
	for i := range as {
		c.alias(&as[i])
	}
	return c.out
}

func (c *includeCheck) add(a *Alias, key, msg string) {
	if c.warned[key] {
		return
	}
	c.warned[key] = true
	c.out = append(c.out, fmt.Sprintf("%s:%d: warning: alias %q: %s", a.File, a.Line, a.Name, msg))
}

func (c *includeCheck) alias(a *Alias) {
	var files []string
	from := map[string]*Untrusted{}
	skipped := map[string][]string{}
	x := Expander{
		Who: c.who,
		Include: func(inc *IncludeFile, u *Untrusted) {
			if _, seen := from[inc.Path]; !seen {
				files = append(files, inc.Path)
				from[inc.Path] = u
			}
			c.syntax(a, inc)
		},
		Refused: func(t, inc string, u *Untrusted) {
			// A file read first with its programs taken (nil above)
			// and again through an untrusted file: the warning names
			// that one.
			if from[inc] == nil {
				from[inc] = u
			}
			skipped[inc] = append(skipped[inc], strconv.Quote(t))
		},
	}
	err := x.Run(a.Targets)
	for _, f := range files {
		if len(skipped[f]) > 0 {
			c.add(a, "trust "+f, c.untrusted(f, from[f], skipped[f]))
		}
	}
	if err != nil {
		what := "defer every message to it (the mail stays queued)"
		if qerr.IsPerm(err) {
			what = "bounce every message to it"
		}
		c.add(a, "error "+err.Error(), fmt.Sprintf("fastforward will %s: %s", what, strings.TrimSuffix(err.Error(), "\n")))
	}
}

// syntax warns of the targets of inc fastforward skips for their
// syntax, or of inc being a mailbox.
func (c *includeCheck) syntax(a *Alias, inc *IncludeFile) {
	if inc.MailLine > 0 {
		c.add(a, "syntax "+inc.Path, fmt.Sprintf(":include: %s looks like a mailbox or a mail message, not a list (line %d: %q): fastforward uses none of its lines",
			inc.Path, inc.MailLine, inc.Mail))
		return
	}
	if len(inc.Bad) == 0 {
		return
	}
	n := min(len(inc.Bad), 3)
	var lines []string
	for _, b := range inc.Bad[:n] {
		lines = append(lines, fmt.Sprintf("line %d: %s", b.Line, b.Msg))
	}
	more := ""
	if len(inc.Bad) > n {
		more = fmt.Sprintf("; and %d more", len(inc.Bad)-n)
	}
	c.add(a, "syntax "+inc.Path, fmt.Sprintf(":include: %s has syntax errors, whose targets fastforward skips at delivery (the other targets are still used): %s%s",
		inc.Path, strings.Join(lines, "; "), more))
}

// untrusted is the warning for the program and file lines of path that
// fastforward skips because of u.
func (c *includeCheck) untrusted(path string, u *Untrusted, skipped []string) string {
	what := u.Why.Reason(userName, "to "+userName(c.who.UID)+", whom fastforward runs as")
	whose := what
	if u.File != path {
		whose = "is included from " + u.File + ", which " + what
	}
	lines := "line " + skipped[0]
	if len(skipped) > 1 {
		n := min(len(skipped), 3)
		lines = "lines " + strings.Join(skipped[:n], ", ")
		if len(skipped) > n {
			lines += fmt.Sprintf(" and %d more", len(skipped)-n)
		}
	}
	return fmt.Sprintf(":include: %s %s: its program and file %s will be skipped at delivery (its addresses are still used)", path, whose, lines)
}
