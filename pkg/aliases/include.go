package aliases

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/hqmail/hqmail/pkg/qerr"
)

// This file reads :include: files for fastforward and dot-forward (pkg/
// forward Expand) and for newaliases' warnings (includecheck.go), so
// that what newaliases says of a file is what delivery will do with it.

// MaxIncludeDepth bounds nested :include: files.
const MaxIncludeDepth = 10

// MaxIncludeSize bounds an :include: file; a larger one defers the
// delivery (it is never cut short: a cut list loses members and mangles
// the last address). A variable for tests.
var MaxIncludeSize = 64 << 20

// BadLine is a target of an :include: file left out for its syntax.
type BadLine struct {
	Line int
	Msg  string
}

// IncludeFile is what an :include: file gives.
type IncludeFile struct {
	Path    string
	Targets []string  // its good targets, in order, in their stored form
	Bad     []BadLine // targets left out for their syntax
	// Mail is the line, and MailLine its number, that shows the file is
	// a mailbox or a mail message rather than a list: then nothing of
	// it is used (Targets and Bad are empty).
	Mail     string
	MailLine int
	// Distrust says why its programs, files and Maildirs are not to be
	// taken; nil when they are (see openInclude).
	Distrust *Distrust

	id   fileID
	size int // bytes read
}

// Warnings returns a line for each target of the file left out for its
// syntax, or the one line saying it is no list, as the delivery report
// gives them.
func (inc *IncludeFile) Warnings() []string {
	if inc.MailLine > 0 {
		return []string{fmt.Sprintf("%s:%d: the :include: file looks like a mailbox or a mail message, not a list (%q): none of its lines is used (#5.2.4)",
			inc.Path, inc.MailLine, inc.Mail)}
	}
	var out []string
	for _, b := range inc.Bad {
		out = append(out, fmt.Sprintf("%s:%d: syntax error in :include: file, target skipped: %s (#5.2.4)", inc.Path, b.Line, b.Msg))
	}
	return out
}

// ReadInclude reads the :include: file path for the deliverer d: its
// path is walked and judged as openInclude says. A file that cannot be
// read (missing, not readable, not a regular file, larger than
// MaxIncludeSize), or that others can write, is a temporary error, so
// the mail stays queued while the admin fixes it.
func ReadInclude(path string, d Deliverer) (*IncludeFile, error) {
	o, err := openIncludeFile(path, d)
	if err != nil {
		return nil, err
	}
	defer o.f.Close()
	return o.read()
}

// includeOpen is an :include: file opened and judged, not read yet.
type includeOpen struct {
	path string
	f    *os.File
	id   fileID
	why  *Distrust
}

// openIncludeFile opens path as ReadInclude does, with its errors.
func openIncludeFile(path string, d Deliverer) (*includeOpen, error) {
	if includeOpened != nil {
		includeOpened(path)
	}
	f, st, why, err := openInclude(path, d)
	if err != nil {
		var pe *os.PathError
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, qerr.Wrap(err, false, fmt.Sprintf("Unable to read include file %s: file does not exist. (#4.2.1)", path))
		case errors.Is(err, errNotRegular):
			return nil, qerr.Temp("Include file %s is not a regular file. (#4.7.0)", path)
		case errors.As(err, &pe) && pe.Path == path:
			return nil, qerr.Wrap(err, false, fmt.Sprintf("Unable to read include file %s: %v. (#4.2.1)", path, pe.Err))
		}
		return nil, qerr.Wrap(err, false, fmt.Sprintf("Unable to read include file %s: %v. (#4.2.1)", path, err))
	}
	if st.Mode&0o002 != 0 {
		f.Close()
		return nil, qerr.Temp("Uh-oh: include file %s is writable by others. (#4.7.0)", path)
	}
	return &includeOpen{path: path, f: f, id: fileID{uint64(st.Dev), st.Ino}, why: why}, nil
}

// read reads and scans the opened file (it does not close it).
func (o *includeOpen) read() (*IncludeFile, error) {
	b, err := io.ReadAll(io.LimitReader(o.f, int64(MaxIncludeSize)+1))
	if err != nil {
		return nil, qerr.Wrap(err, false, fmt.Sprintf("Unable to read include file %s. (#4.3.0)", o.path))
	}
	if len(b) > MaxIncludeSize {
		return nil, qerr.Temp("Include file %s is larger than %d MB. (#4.3.0)", o.path, MaxIncludeSize>>20)
	}
	inc := &IncludeFile{Path: o.path, Distrust: o.why, id: o.id, size: len(b)}
	inc.scan(string(b))
	return inc, nil
}

// includeOpened, when set (by tests), is called with the path of each
// :include: file opened.
var includeOpened func(path string)

// scan reads the lines of an :include: file: targets separated by
// commas, any number a line, '#' comments.
//
// A line that looks like the first line of a message in a mailbox
// ("From " at its start) or like a header field ("Subject: ...", a name
// of letters, digits and dashes, a colon and a blank) is a syntax error
// in any list; a file holding one is taken for a mailbox or a message,
// not a list, and nothing of it is used. The lines of a mailbox are
// chosen by whoever sends mail to it: none of them may name a recipient,
// and none a program to run.
func (inc *IncludeFile) scan(s string) {
	// A byte order mark (an editor's) is no part of the first member.
	s = strings.TrimPrefix(s, "\ufeff")
	for i, line := range strings.Split(s, "\n") {
		if t := strings.TrimSpace(line); t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		good, errs := ScanTargets(line)
		if len(errs) > 0 && looksLikeMail(line) {
			inc.Targets, inc.Bad = nil, nil
			inc.Mail, inc.MailLine = strings.TrimRight(line, "\r"), i+1
			if len(inc.Mail) > 60 {
				inc.Mail = inc.Mail[:60] + "..."
			}
			return
		}
		for _, g := range good {
			inc.Targets = append(inc.Targets, g.Text)
		}
		for _, e := range errs {
			inc.Bad = append(inc.Bad, BadLine{i + 1, e.Msg})
		}
	}
}

// looksLikeMail reports whether line starts as a mailbox's "From " line
// or a header field does.
func looksLikeMail(line string) bool {
	if strings.HasPrefix(line, "From ") {
		return true
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case i > 0 && (c >= '0' && c <= '9' || c == '-'):
		case i > 0 && c == ':':
			return i+1 < len(line) && (line[i+1] == ' ' || line[i+1] == '\t')
		default:
			return false
		}
	}
	return false
}

// SkippedWhenUntrusted reports whether target is left out of an
// :include: file not trusted with programs and files: a program, a file
// (but /dev/null, which keeps nothing) or a Maildir.
func SkippedWhenUntrusted(target string) bool {
	k, arg := Classify(target)
	return k == Program || k == Maildir || (k == File && arg != os.DevNull)
}

// Untrusted is the first :include: file of a chain not trusted with
// programs and files, and why.
type Untrusted struct {
	File string
	Why  *Distrust
	inc  string // the :include: file the targets at hand are in
}

// Refusal is the delivery report's line for target, of the :include:
// file inc, left out because of u.
func (u *Untrusted) Refusal(target, inc string) string {
	why := "it " + u.Why.Reason(UIDName, "the delivering user")
	if inc != u.File {
		why = fmt.Sprintf("it is included from %s, which %s", u.File, u.Why.Reason(UIDName, "the delivering user"))
	}
	return fmt.Sprintf("%q skipped: program and file targets in :include: %s are ignored: %s (#5.7.1)", target, inc, why)
}

// Expander expands a list of targets as fastforward and dot-forward
// deliver it: :include: files are read in place (ReadInclude), nested up
// to MaxIncludeDepth; the programs, files and Maildirs of a file that is
// not trusted, or that is included from one that is not, are left out.
//
// A file named again (by another :include: line, another path, or a
// hard link: the same device and inode) is not read again: every target
// it gives is in the result already, and a target is delivered once.
// It is read again only when it was read before under the other trust
// state (its programs and files left out the first time, and now
// taken, or the other way round), or where its nesting, read deeper
// than before, goes past MaxIncludeDepth (the error it was). So each
// file is read at most twice in a run, and a few small files that
// include each other thirty times over, level after level, no longer
// make millions of reads.
type Expander struct {
	Who Deliverer
	// Target is called for each target to deliver to, in order.
	Target func(t string)
	// Include is called for each :include: file read, before its
	// targets, with the first untrusted file of its chain (nil: none).
	Include func(inc *IncludeFile, from *Untrusted)
	// Refused is called for each target left out of the :include: file
	// inc because of from.
	Refused func(t, inc string, from *Untrusted)

	paths map[string]pathID // each path opened: the file it reached
	done  map[doneKey]int   // each file read to its end: the height of its nesting
	opens int               // :include: files opened in this run
	bytes int               // bytes read from them
}

// MaxIncludeFiles bounds the :include: files opened in one run of
// Expander (one delivery; one alias for newaliases' check), and
// MaxIncludeTotal the bytes read from them all: past either the
// delivery is deferred (the mail stays queued), however the files
// include each other. Variables for tests.
var (
	MaxIncludeFiles = 10000
	MaxIncludeTotal = 256 << 20
)

type fileID struct{ dev, ino uint64 }

// pathID is the file an :include: path led to, and its judgement.
type pathID struct {
	id  fileID
	why *Distrust
}

// doneKey is a file read to its end, and whether its programs and files
// were taken (no untrusted file in its chain, itself included).
type doneKey struct {
	id      fileID
	trusted bool
}

// Run expands targets. An :include: file that cannot be read is the
// temporary error of ReadInclude, and so is going past MaxIncludeFiles
// or MaxIncludeTotal; nesting too deep, or a file that includes itself
// (an :include: loop), is a permanent one.
func (x *Expander) Run(targets []string) error {
	x.paths = map[string]pathID{}
	x.done = map[doneKey]int{}
	x.opens, x.bytes = 0, 0
	_, err := x.run(targets, 0, nil, nil)
	return err
}

// run expands targets met depth files deep. It returns the height of
// their nesting: 0 without :include: targets, else one more than that of
// the highest file they include.
func (x *Expander) run(targets []string, depth int, from *Untrusted, chain []fileID) (int, error) {
	height := 0
	for _, t := range targets {
		k, arg := Classify(t)
		if k != Include {
			if from != nil && SkippedWhenUntrusted(t) {
				if x.Refused != nil {
					x.Refused(t, from.inc, from)
				}
				continue
			}
			if x.Target != nil {
				x.Target(t)
			}
			continue
		}
		if depth >= MaxIncludeDepth {
			return 0, qerr.Perm("Too many nested :include: files at %s. (#5.4.6)", arg)
		}
		h, err := x.include(arg, depth, from, chain)
		if err != nil {
			return 0, err
		}
		height = max(height, h+1)
	}
	return height, nil
}

// include expands the :include: file arg, named by a file depth deep
// (0: by the list itself), and returns the height of its nesting.
//
// A file read to its end before, under the same trust state, is skipped:
// its targets are in the result, and it led to no loop (a file on a
// loop is never read to its end: the loop is found first). Unless it
// is met deeper now, and its nesting would go past MaxIncludeDepth
// from here: then it is read again, and meets that error as before.
func (x *Expander) include(arg string, depth int, from *Untrusted, chain []fileID) (int, error) {
	if p, ok := x.paths[arg]; ok {
		if h, ok := x.done[doneKey{p.id, from == nil && p.why == nil}]; ok && depth+h < MaxIncludeDepth {
			return h, nil
		}
	}
	if x.opens >= MaxIncludeFiles {
		return 0, qerr.Temp("Too many :include: files for one delivery: more than %d, at %s. (#4.3.0)", MaxIncludeFiles, arg)
	}
	x.opens++
	o, err := openIncludeFile(arg, x.Who)
	if err != nil {
		return 0, err
	}
	x.paths[arg] = pathID{o.id, o.why}
	key := doneKey{o.id, from == nil && o.why == nil}
	if h, ok := x.done[key]; ok && depth+h < MaxIncludeDepth {
		o.f.Close()
		return h, nil
	}
	inc, err := o.read()
	o.f.Close()
	if err != nil {
		return 0, err
	}
	if x.bytes += inc.size; x.bytes > MaxIncludeTotal {
		limit := fmt.Sprintf("%d MB", MaxIncludeTotal>>20)
		if MaxIncludeTotal < 1<<20 {
			limit = fmt.Sprintf("%d bytes", MaxIncludeTotal)
		}
		return 0, qerr.Temp("Too much to read in :include: files for one delivery: more than %s, at %s. (#4.3.0)", limit, arg)
	}
	for _, c := range chain {
		if c == o.id {
			return 0, qerr.Perm("Include loop: %s includes itself, directly or through other :include: files. (#5.4.6)", arg)
		}
	}
	next := from
	switch {
	case from != nil:
		next = &Untrusted{File: from.File, Why: from.Why, inc: arg}
	case inc.Distrust != nil:
		next = &Untrusted{File: arg, Why: inc.Distrust, inc: arg}
	}
	if x.Include != nil {
		x.Include(inc, next)
	}
	h, err := x.run(inc.Targets, depth+1, next, append(chain[:len(chain):len(chain)], o.id))
	if err != nil {
		return 0, err
	}
	x.done[key] = h
	return h, nil
}
