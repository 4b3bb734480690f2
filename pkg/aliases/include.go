package aliases

import (
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"
)

// fastforward (pkg/forward Expand) takes programs, files and Maildirs
// from an :include: file only when it, and every :include: file above
// it, belongs to root or to the user it runs as (the alias user); from
// any other it skips them at delivery, with a line in the delivery
// report. newaliases warns of them ahead (includeWarnings), so that a
// list that ran a program before that rule does not stop silently. The
// files are read as fastforward reads them, with its bounds; pkg/forward
// imports this package, so its reader is not used here.
const (
	includeDepth = 10       // pkg/forward MaxIncludeDepth
	includeSize  = 64 << 20 // pkg/forward MaxIncludeSize
)

// readIncludeOwner reads the :include: file path as fastforward does
// (symbolic links followed; a regular file, no larger than includeSize)
// and returns its targets and the uid that owns it. ok is false when it
// cannot be read so: fastforward defers such a delivery, which says why,
// and newaliases says nothing of it. A line that is no target list is
// skipped (fastforward bounces with it).
func readIncludeOwner(path string) (targets []string, st *syscall.Stat_t, ok bool) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return nil, nil, false
	}
	st, isStat := fi.Sys().(*syscall.Stat_t)
	if !isStat {
		return nil, nil, false
	}
	b, err := io.ReadAll(io.LimitReader(f, includeSize+1))
	if err != nil || len(b) > includeSize {
		return nil, nil, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if t := strings.TrimSpace(line); t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		ts, err := SplitTargets(line)
		if err != nil {
			continue
		}
		targets = append(targets, ts...)
	}
	return targets, st, true
}

// skippedAtDelivery reports whether fastforward leaves target out of an
// :include: file it does not trust: a program, a file (but /dev/null,
// which keeps nothing) or a Maildir.
func skippedAtDelivery(target string) bool {
	k, arg := Classify(target)
	return k == Program || k == Maildir || (k == File && arg != os.DevNull)
}

// userName is "uid N (name)", or "uid N" when the name is unknown.
func userName(uid int) string {
	s := "uid " + strconv.Itoa(uid)
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil && u.Username != "" {
		s += " (" + u.Username + ")"
	}
	return s
}

// includeCheck walks the :include: files of the aliases.
type includeCheck struct {
	uid    int             // the user fastforward runs as
	warned map[string]bool // include files already named
	out    []string
}

// distrust names the first :include: file of a chain that belongs to
// neither root nor the delivering user.
type distrust struct {
	file     string
	owner    int
	groupGID int // >= 0: the file is writable by this group (owner then unused)
}

// includeWarnings returns, for each :include: file named by the aliases
// (and by the :include: files they name), whose program, file and
// Maildir lines fastforward will skip at delivery because it or one
// above it belongs to neither root nor deliverUID, one warning naming
// the file, the owner and those lines, in the form
// "FILE:LINE: warning: ..." of the alias that names it first. Each file
// is named once.
func includeWarnings(as []Alias, deliverUID int) []string {
	c := &includeCheck{uid: deliverUID, warned: map[string]bool{}}
	for _, a := range as {
		for _, t := range a.Targets {
			if k, arg := Classify(t); k == Include {
				c.visit(&a, arg, 1, nil, map[string]bool{})
			}
		}
	}
	return c.out
}

// visit checks the :include: file path (depth levels down, below the
// files of chain), above being the first untrusted file above it.
func (c *includeCheck) visit(a *Alias, path string, depth int, above *distrust, chain map[string]bool) {
	if depth > includeDepth || chain[path] {
		return // fastforward refuses the nesting, or loops: no more here
	}
	targets, st, ok := readIncludeOwner(path)
	if !ok {
		return
	}
	why := above
	owner := int(st.Uid)
	switch {
	case why != nil:
	case owner != 0 && owner != c.uid:
		why = &distrust{file: path, owner: owner, groupGID: -1}
	case st.Mode&0o020 != 0:
		// Its group can write it: fastforward trusts it as little.
		why = &distrust{file: path, groupGID: int(st.Gid)}
	}
	if why != nil && !c.warned[path] {
		var skipped []string
		for _, t := range targets {
			if skippedAtDelivery(t) {
				skipped = append(skipped, strconv.Quote(t))
			}
		}
		if len(skipped) > 0 {
			c.warned[path] = true
			c.out = append(c.out, c.warning(a, path, why, skipped))
		}
	}
	chain[path] = true
	for _, t := range targets {
		if k, arg := Classify(t); k == Include {
			c.visit(a, arg, depth+1, why, chain)
		}
	}
	delete(chain, path)
}

func (c *includeCheck) warning(a *Alias, path string, why *distrust, skipped []string) string {
	what := "belongs to " + userName(why.owner) + ", not to root or to " + userName(c.uid) + ", whom fastforward runs as"
	if why.groupGID >= 0 {
		what = fmt.Sprintf("is writable by its group (gid %d)", why.groupGID)
	}
	whose := what
	if why.file != path {
		whose = "is included from " + why.file + ", which " + what
	}
	lines := "line " + skipped[0]
	if len(skipped) > 1 {
		n := min(len(skipped), 3)
		lines = "lines " + strings.Join(skipped[:n], ", ")
		if len(skipped) > n {
			lines += fmt.Sprintf(" and %d more", len(skipped)-n)
		}
	}
	return fmt.Sprintf("%s:%d: warning: alias %q: :include: %s %s: "+
		"its program and file %s will be skipped at delivery (its addresses are still used)",
		a.File, a.Line, a.Name, path, whose, lines)
}
