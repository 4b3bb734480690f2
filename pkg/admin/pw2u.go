package admin

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hqmail/hqmail/pkg/address"
	"github.com/hqmail/hqmail/pkg/getpw"
	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/unixid"
)

// Pw2uOptions select qmail-pw2u's rules. The zero value is not the default;
// use DefaultPw2uOptions.
type Pw2uOptions struct {
	AllowUpper bool // -U: keep names with upper-case letters (default -u: skip)
	// CheckHome (-h, the default) skips accounts whose home does not exist
	// or is not owned by the account's uid, as qmail-getpw does; -H does
	// not look at the homes.
	CheckHome      bool
	ExtensionLines bool // -c (default): a "+name-" line per account for name-ext; -C: none
	// UsersDir holds the optional files include, exclude, mailnames,
	// subusers and append (ROOT/users); "" means none are read.
	UsersDir string
	// AliasHome, when set, is the alias account's home in the output
	// (QMAILHOME/alias of the tree), whatever passwd says, as qmail-getpw.
	AliasHome string
}

// DefaultPw2uOptions are the options without flags.
func DefaultPw2uOptions() Pw2uOptions {
	return Pw2uOptions{CheckHome: true, ExtensionLines: true}
}

type pwEntry struct {
	name, uid, gid, home string
}

// Pw2u converts a passwd file (name:pw:uid:gid:gecos:home:shell lines) into
// users/assign lines, ended by ".". Rules, in order, per account:
//   - a line that is empty or starts with '#' is skipped; a line with fewer
//     than 7 fields or a NUL byte, or a uid or gid that is not a number, is
//     an error;
//   - a name already seen is skipped (the first entry wins, as getpwnam);
//   - names with blanks or upper-case letters (unless AllowUpper), names
//     of getpw.MaxName bytes or more, uid 0 (qmail-lspawn never delivers
//     as root), names listed in users/exclude, names missing from
//     users/include (when that file exists) and, with CheckHome, accounts
//     whose home directory does not exist or is not owned by their uid
//     are skipped; each skip but the lists' is noted on warn;
//   - users/mailnames "user:name1:name2..." gives the local parts that reach
//     user instead of the user name; an empty name (a trailing colon) is
//     ignored, and a line with no name left is an error;
//   - each local part L becomes "=L:user:uid:gid:home:::" and, with
//     ExtensionLines, "+L-:user:uid:gid:home:-::" (L-ext reaches ~/.qmail-ext).
//
// After the accounts come users/subusers "sub:user:pre:" lines, each as
// "=sub:user:uid:gid:home:-:pre:" and "+sub-:user:uid:gid:home:-:pre-:"
// (user must be an account kept above; an empty sub is an error), then
// users/append verbatim, then ".".
//
// Only users/append can put an empty local part in the output: "=:" and
// "+-:" lines would catch every local part that starts with '-'.
// users/include and users/exclude never hold an empty name (blank lines
// are skipped).
func Pw2u(in io.Reader, out io.Writer, warn io.Writer, o Pw2uOptions) error {
	include, hasInclude, err := readUsersList(o.UsersDir, "include")
	if err != nil {
		return err
	}
	exclude, _, err := readUsersList(o.UsersDir, "exclude")
	if err != nil {
		return err
	}
	mailnames, err := readUsersLines(o.UsersDir, "mailnames")
	if err != nil {
		return err
	}
	subusers, err := readUsersLines(o.UsersDir, "subusers")
	if err != nil {
		return err
	}
	appendLines, err := readUsersLines(o.UsersDir, "append")
	if err != nil {
		return err
	}
	names := map[string][]string{}
	for _, l := range mailnames {
		f := strings.Split(l, ":")
		// A NUL would end up in users/assign, which qmail-newu refuses.
		if len(f) < 2 || strings.ContainsRune(l, 0) {
			return fmt.Errorf("bad format in users/mailnames: %q", l)
		}
		// An empty name (a trailing colon, "a::b") is none: as a local
		// part it made "=:user" and "+-:user", which gave user every
		// local part that starts with '-'.
		n := 0
		for _, name := range f[1:] {
			if name != "" {
				names[f[0]] = append(names[f[0]], name)
				n++
			}
		}
		if n == 0 {
			return fmt.Errorf("bad format in users/mailnames: %q names no local part", l)
		}
	}

	bw := bufio.NewWriter(out)
	accounts := map[string]pwEntry{}
	seen := map[string]bool{}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) < 7 || strings.ContainsRune(line, 0) {
			return fmt.Errorf("unable to parse passwd line %d: %q", lineNo, line)
		}
		e := pwEntry{name: f[0], uid: f[2], gid: f[3], home: f[5]}
		if !isNumber(e.uid) || !isNumber(e.gid) {
			return fmt.Errorf("unable to parse passwd line %d: %q", lineNo, line)
		}
		dup := seen[e.name]
		seen[e.name] = true
		if dup {
			continue
		}
		skip := func(why string) { fmt.Fprintf(warn, "qmail-pw2u: skipping %s: %s\n", e.name, why) }
		switch {
		case e.name == "" || strings.ContainsAny(e.name, " \t"):
			skip("bad user name")
			continue
		case e.name != address.LowerASCII(e.name) && !o.AllowUpper:
			// A–Z only, as qmail's test: strings.ToLower also made
			// every byte that is no UTF-8 (a Latin-1 name) U+FFFD and
			// took non-ASCII capitals for upper case.
			skip("upper-case letters in the name (use -U)")
			continue
		case len(e.name) >= getpw.MaxName:
			skip(fmt.Sprintf("name of %d bytes or more (qmail-getpw does not look it up)", getpw.MaxName))
			continue
		case strings.TrimLeft(e.uid, "0") == "":
			skip("uid 0 (qmail-lspawn does not deliver as root; its mail goes to the alias user)")
			continue
		case isMinusOne(e.uid) || isMinusOne(e.gid):
			skip("uid or gid 4294967295, (uid_t)-1, which is nobody's")
			continue
		}
		if exclude[e.name] {
			continue
		}
		if hasInclude && !include[e.name] {
			continue
		}
		if e.name == getpw.Alias && o.AliasHome != "" {
			e.home = o.AliasHome
		}
		if e.home == "" || e.home[0] != '/' {
			skip("home directory is not an absolute path")
			continue
		}
		if o.CheckHome {
			owner, err := getpw.StatOwner(e.home)
			if err != nil {
				skip("home directory " + e.home + " is missing (use -H)")
				continue
			}
			if unixid.Format(owner) != strings.TrimLeft(e.uid, "0") {
				// Its .qmail files would run as this account while
				// they belong to another; qmail-getpw skips it too.
				skip(fmt.Sprintf("home directory %s is owned by uid %s, not %s (use -H)", e.home, unixid.Format(owner), e.uid))
				continue
			}
		}
		accounts[e.name] = e
		locals := names[e.name]
		if locals == nil {
			locals = []string{e.name}
		}
		for _, l := range locals {
			fmt.Fprintf(bw, "=%s:%s:%s:%s:%s:::\n", l, e.name, e.uid, e.gid, e.home)
			if o.ExtensionLines {
				fmt.Fprintf(bw, "+%s-:%s:%s:%s:%s:-::\n", l, e.name, e.uid, e.gid, e.home)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("unable to read passwd input: %w", err)
	}
	for _, l := range subusers {
		f := strings.Split(l, ":")
		if len(f) < 3 || strings.ContainsRune(l, 0) {
			return fmt.Errorf("bad format in users/subusers: %q", l)
		}
		if f[0] == "" {
			// "=:user" and "+-:user" would take every local part
			// that starts with '-'.
			return fmt.Errorf("bad format in users/subusers: %q has an empty sub", l)
		}
		e, ok := accounts[f[1]]
		if !ok {
			fmt.Fprintf(warn, "qmail-pw2u: skipping subuser %s: no account %s\n", f[0], f[1])
			continue
		}
		fmt.Fprintf(bw, "=%s:%s:%s:%s:%s:-:%s:\n", f[0], e.name, e.uid, e.gid, e.home, f[2])
		fmt.Fprintf(bw, "+%s-:%s:%s:%s:%s:-:%s-:\n", f[0], e.name, e.uid, e.gid, e.home, f[2])
	}
	for _, l := range appendLines {
		bw.WriteString(l + "\n")
	}
	bw.WriteString(".\n")
	return bw.Flush()
}

func isNumber(s string) bool {
	if s == "" {
		return false
	}
	_, err := strconv.ParseUint(s, 10, 32)
	return err == nil
}

// readUsersLines reads dir/name as a list (blank and '#' lines skipped);
// missing file or dir "" gives nothing. A FIFO or directory there is an
// error at once (readWhole), not a wait for a writer.
func readUsersLines(dir, name string) ([]string, error) {
	if dir == "" {
		return nil, nil
	}
	b, err := readWhole(filepath.Join(dir, name))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("unable to read users/%s: %w", name, qerr.Bare(err))
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimRight(l, " \t\r")
		if l == "" || l[0] == '#' {
			continue
		}
		out = append(out, l)
	}
	return out, nil
}

func readUsersList(dir, name string) (map[string]bool, bool, error) {
	lines, err := readUsersLines(dir, name)
	if err != nil || lines == nil {
		exists := false
		if err == nil && dir != "" {
			_, serr := os.Stat(filepath.Join(dir, name))
			exists = serr == nil
		}
		return map[string]bool{}, exists, err
	}
	m := map[string]bool{}
	for _, l := range lines {
		m[l] = true
	}
	return m, true, nil
}

// Pw2uMain is qmail-pw2u: options from args, passwd on stdin, users/assign
// lines on stdout. Exit 0; 100 on a usage error; 111 on bad input or I/O
// trouble, with "qmail-pw2u: fatal: ..." on stderr.
func Pw2uMain(root string, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	o := DefaultPw2uOptions()
	o.UsersDir = filepath.Join(root, "users")
	o.AliasHome = filepath.Join(root, "alias")
	for _, a := range args {
		if len(a) < 2 || a[0] != '-' {
			fmt.Fprintln(stderr, "usage: qmail-pw2u [-oOuUhHcC] < passwd > users/assign")
			return 100
		}
		for _, c := range a[1:] {
			switch c {
			case 'o', 'O':
				// Accepted as before: -o kept uid 0 accounts, whose
				// mail qmail-lspawn then deferred until it bounced.
			case 'U':
				o.AllowUpper = true
			case 'u':
				o.AllowUpper = false
			case 'h':
				o.CheckHome = true
			case 'H':
				o.CheckHome = false
			case 'c':
				o.ExtensionLines = true
			case 'C':
				o.ExtensionLines = false
			default:
				fmt.Fprintln(stderr, "usage: qmail-pw2u [-oOuUhHcC] < passwd > users/assign")
				return 100
			}
		}
	}
	if err := Pw2u(stdin, stdout, stderr, o); err != nil {
		fmt.Fprintf(stderr, "qmail-pw2u: fatal: %v\n", err)
		return 111
	}
	return 0
}

// isMinusOne reports whether the decimal number s (leading zeros allowed,
// as isNumber takes them) is 4294967295, (uid_t)-1.
func isMinusOne(s string) bool {
	n, err := strconv.ParseUint(s, 10, 32)
	return err == nil && n == 1<<32-1
}
