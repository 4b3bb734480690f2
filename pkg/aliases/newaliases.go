package aliases

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hqmail/hqmail/pkg/cdb"
	"github.com/hqmail/hqmail/pkg/control"
	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qhome"
)

// Source returns the aliases file of the tree at root.
func Source(root string) (string, error) {
	return control.Open(root).LineDefault(SourceControl, DefaultSource)
}

// shadow returns the file of the alias home that qmail-local reads for
// the local part name before ~alias/.qmail-default (which runs
// fastforward), or "": .qmail-NAME, else .qmail-PREFIX-default for each
// prefix ending at a dash, longest first; a '.' of the name is a ':' in
// file names.
func shadow(home, name string) string {
	name = strings.ReplaceAll(name, ".", ":")
	try := []string{".qmail-" + name}
	for i := len(name) - 1; i > 0; i-- {
		if name[i] == '-' {
			try = append(try, ".qmail-"+name[:i]+"-default")
		}
	}
	for _, f := range try {
		p := filepath.Join(home, f)
		if _, err := os.Lstat(p); err == nil {
			return p
		}
	}
	return ""
}

// sendmailOptions reads the sendmail options newaliases is given as a
// link to sendmail (Postfix's and sendmail's newaliases take them):
// -oAfile (or -oA file) names the aliases file, as -f does; any other -oX
// option is ignored. Options after "--" are left alone. -oA without a
// file (nothing after it, an option, an empty word, or only a map type
// such as "hash:") is an error.
func sendmailOptions(args []string) ([]string, error) {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return append(out, args[i:]...), nil
		case strings.HasPrefix(a, "-oA"):
			f := a[3:]
			if f == "" && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
				i++
				f = args[i]
			}
			if withoutMapType(f) == "" {
				if f == "" {
					return nil, errors.New("-oA needs the aliases file (-oA/etc/aliases or -oA /etc/aliases)")
				}
				return nil, fmt.Errorf("-oA%s names no aliases file (-oA%s/etc/aliases)", f, f)
			}
			out = append(out, "-f", withoutMapType(f))
		case strings.HasPrefix(a, "-o") && len(a) > 2:
			// -oi, -oem, ...: nothing for newaliases to do
		default:
			out = append(out, a)
		}
	}
	return out, nil
}

// withoutMapType removes the map type sendmail and Postfix let -oA carry
// ("hash:/etc/aliases"): there is one kind of database here.
func withoutMapType(f string) string {
	if t, rest, ok := strings.Cut(f, ":"); ok {
		switch t {
		case "hash", "btree", "dbm", "cdb", "lmdb":
			return rest
		}
	}
	return f
}

// NewaliasesMain is newaliases(8): compile the aliases file into
// root/etc/aliases.cdb. With any syntax error nothing is written (the old
// database stays in force) and the exit code is 100.
func NewaliasesMain(root string, args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("newaliases", flag.ContinueOnError)
	fl.SetOutput(stderr)
	src := fl.String("f", "", "aliases file to read (default: the file named by the first line of control/aliases, else /etc/aliases)")
	check := fl.Bool("n", false, "check the file only; write nothing")
	// Postfix's and sendmail's newaliases take -v (verbose); scripts and
	// package hooks pass it. The summary line is printed anyway.
	fl.Bool("v", false, "accepted for compatibility; the summary is always printed")
	fl.Usage = func() {
		fmt.Fprintln(stderr, "usage: newaliases [-n] [-v] [-f aliasesfile | -oAaliasesfile]")
		fl.PrintDefaults()
		fmt.Fprintln(stderr, "  -oA file\n    \tas -f, sendmail's spelling (also -oA file; a map type such as hash: is dropped)")
	}
	sargs, err := sendmailOptions(args)
	if err != nil {
		fmt.Fprintf(stderr, "newaliases: fatal: %v\n", err)
		fl.Usage()
		return 100
	}
	if err := fl.Parse(sargs); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 100
	}
	if fl.NArg() > 0 {
		// "newaliases /etc/other" would compile the default file.
		fmt.Fprintf(stderr, "newaliases: fatal: unexpected argument %q (the file is given with -f)\n", fl.Arg(0))
		fl.Usage()
		return 100
	}
	if *src == "" {
		s, err := Source(root)
		if err != nil {
			fmt.Fprintf(stderr, "newaliases: fatal: unable to read control/%s: %v\n", SourceControl, qerr.Bare(err))
			return 111
		}
		if s == "" {
			fmt.Fprintf(stderr, "newaliases: fatal: control/%s is empty: it names the aliases file\n", SourceControl)
			return 100
		}
		*src = s
	}
	// Not a plain open: a FIFO there would hold newaliases until a
	// writer came. A FIFO, a device or a directory is refused at once
	// (/dev/null still reads as an empty file).
	f, err := qhome.OpenRegular(*src, os.O_RDONLY)
	if err != nil {
		fmt.Fprintf(stderr, "newaliases: fatal: unable to open %s: %v\n", *src, qerr.Bare(err))
		if errors.Is(err, fs.ErrNotExist) {
			return 100
		}
		return 111
	}
	as, errs := Parse(f, *src)
	f.Close()
	nerr := 0
	var lines []string
	for _, e := range errs {
		fmt.Fprintf(stderr, "newaliases: %v\n", e)
		if pe, ok := e.(*Error); !ok || !pe.Warning {
			nerr++
			// The summary names ten lines: eleven tell there are more
			// (searching every line seen made many errors quadratic).
			if ok && len(lines) <= 10 && !slices.Contains(lines, fmt.Sprint(pe.Line)) {
				lines = append(lines, fmt.Sprint(pe.Line))
			}
		}
	}
	if nerr > 0 {
		// One bad line keeps the whole old database, as qmail's
		// newaliases does: a half-compiled file would make the aliases
		// after it bounce.
		where := ""
		if len(lines) > 10 {
			lines = append(lines[:10], "...")
		}
		if len(lines) > 0 {
			where = " (line " + strings.Join(lines, ", ") + ")"
		}
		fmt.Fprintf(stderr, "newaliases: fatal: %d error(s) in %s%s; %s not changed\n", nerr, *src, where, DBFile)
		return 100
	}
	for _, a := range as {
		if dot := shadow(filepath.Join(root, "alias"), a.Name); dot != "" {
			fmt.Fprintf(stderr, "newaliases: %s:%d: warning: %s exists and takes precedence over alias %q\n", a.File, a.Line, dot, a.Name)
		}
	}
	// What fastforward will skip in :include: files, or meet there and
	// defer or bounce on (includecheck.go). The alias user is known from
	// etc/ids; without it there is no tree to deliver through, and
	// nothing to say. Run as another user (root), the alias user's
	// permissions are checked from the mode bits: deliveries to alias
	// run with its primary group only, as qmail-lspawn starts them.
	if ids, err := qhome.LoadIDs(root); err == nil {
		who := Deliverer{UID: ids.Alias.UID}
		if os.Geteuid() != ids.Alias.UID {
			who.Groups = []int{ids.Alias.GID}
		}
		for _, w := range includeWarnings(as, who) {
			fmt.Fprintf(stderr, "newaliases: %s\n", w)
		}
	}
	if *check {
		fmt.Fprintf(stdout, "%s: %d aliases, no errors\n", *src, len(as))
		return 0
	}
	db := filepath.Join(root, DBFile)
	if err := cdb.WriteFile(db, 0644, Records(as, *src)); err != nil {
		fmt.Fprintf(stderr, "newaliases: fatal: unable to write %s: %v\n", db, err)
		return 111
	}
	fmt.Fprintf(stdout, "%s: %d aliases compiled into %s\n", *src, len(as), db)
	return 0
}
