package inject

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hqmail/hqmail/pkg/address"
	"github.com/hqmail/hqmail/pkg/control"
	"github.com/hqmail/hqmail/pkg/idna"
	"github.com/hqmail/hqmail/pkg/qdate"
	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/qq"
)

// Recipient strategies (the -a -h -A -H options).
const (
	RecipDefault = iota // -A: arguments if any, else the header
	RecipArgs           // -a
	RecipHeader         // -h
	RecipBoth           // -H
)

// Options are what qmail-inject's command line says.
type Options struct {
	Strategy int
	Print    bool     // -n: print the message instead of queueing it
	Sender   *string  // -f, as given (nil: none)
	Args     []string // recipients on the command line
}

// Job is one injection: the options, the environment (KEY=VALUE, also
// given to qmail-queue), the qmail tree, and where input and output go.
type Job struct {
	Options
	Root   string
	Env    []string
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Now and Pid are the time and process id used in Date, Message-ID and
	// the 'm' sender; zero values mean time.Now() and os.Getpid().
	Now time.Time
	Pid int
	// Started, if set, is called with the pid of qmail-queue.
	Started func(pid int)
	// Name prefixes fatal messages ("qmail-inject" when empty).
	Name string
	// NeedRecipients makes an envelope without recipients an error
	// (ErrNoRecipients) instead of queueing it; sendmail uses it.
	NeedRecipients bool
	// HeaderRecipients, if set, is given the header fields the
	// recipients are taken from (To, Cc, Bcc and Apparently-To, or
	// Resent-To, Resent-Cc and Resent-Bcc in resent mail), in header
	// order, once the header is read, when the strategy reads the header;
	// it returns the recipients to queue in place of theirs, or an error
	// that refuses the message (exit 100 with its text; nothing queued).
	// qmail-inject leaves it nil; sendmail warns of a field that does
	// not parse, drops an address with no local part and refuses one
	// with a line end in it.
	HeaderRecipients func(fields []RecipField) ([]string, error)
	// IgnoreReturnPath deletes a Return-Path field and never takes the
	// envelope sender from it, as QMAILINJECT's s does. sendmail sets
	// it, as sendmail and Postfix ignore a Return-Path they are given.
	IgnoreReturnPath bool
	// KeepUnparsable keeps a sender-type field (From, Sender, Reply-To,
	// ...) that does not parse as it was written, where qmail-inject
	// refuses the message ("unable to parse this line", 100). sendmail
	// sets it: sendmail and Postfix accept any header from the MUAs and
	// scripts that call them.
	KeepUnparsable bool
	// BareUTF8Domain writes a domain's UTF-8 words bare (RFC 6532), where
	// qmail-inject quotes them as qmail does (admin@"bücher".example, no
	// domain at all). sendmail sets it.
	BareUTF8Domain bool
	// VERP asks for a per-recipient variable envelope return path also
	// when the sender comes from -f (QMAILINJECT's r leaves -f alone):
	// the local part gets a '-' and the address "-@[]", which qmail-send
	// turns into local-recipient=domain@host for each recipient.
	// sendmail sets it for -XV. A null sender stays null.
	VERP bool
}

// RecipField is one header field recipients are taken from.
type RecipField struct {
	Name   string   // the field's name as written ("To", "resent-cc")
	Parsed bool     // false: it did not parse, stays as it is and gives no address
	Addrs  []string // the envelope addresses it gives, in order
}

// Error is a failure with the exit code qmail-inject uses for it (100 or
// 111) and the text after "qmail-inject: fatal: " (empty when the message
// was already printed).
type Error struct {
	Code  int
	Text  string
	Queue bool // the failure was reported by qmail-queue
	// Err is the failure in full where Text is qmail-inject's terse
	// wording, for a caller whose messages are its own (sendmail): a
	// control file or the QMAILMFTFILE file that cannot be read is "read
	// error" in Text (qmail-inject(8) documents it) and here the file
	// and the reason ("unable to read controls: open
	// DIR/control/defaultdomain: permission denied"); a qmail-queue that
	// could not be started is "unable to exec qq (#4.3.0)" in Text and
	// here that and why (qq.StartFailure); a message that cannot be read
	// is "read error: " and qmail's reason in Text and here sendmail's
	// words (inputFailed). Nil otherwise.
	Err error
}

// ErrNoRecipients is the text of the error NeedRecipients asks for.
const ErrNoRecipients = "no recipients found"

// errRead is qmail-inject's text for any read failure: a control file,
// the QMAILMFTFILE file, and the message (followed by the reason there).
const errRead = "read error"

func (e *Error) Error() string { return e.Text }

// Unwrap returns Err.
func (e *Error) Unwrap() error { return e.Err }

// readFailed is the read error of a file other than the message: Text is
// qmail's, Err says what could not be read and why.
func readFailed(what string, err error) *Error {
	e := fatalf(111, errRead)
	e.Err = fmt.Errorf("unable to read %s: %w", what, err)
	return e
}

// inputFailed is the failure to read the message itself: qmail's "read
// error" followed by qmail's words for the reason ("read error: is a
// directory", "read error: connection reset"), and in Err sendmail's
// text, with the reason in Go's words as in its other messages. qmail's
// qmail-inject printed "read error" alone, so that a directory, a
// write-only descriptor, a reset socket or a terminal that hung up on
// descriptor 0 all looked alike.
//
// EBADF from a read is a descriptor open for writing only (0>file): a
// closed descriptor 0 is reopened on /dev/null by the Go runtime before
// main. Both texts add "for reading": qmail's words alone ("file
// descriptor not open") would send the reader to check a descriptor that
// is open.
func inputFailed(err error) *Error {
	why, goWhy := reasonText(err), qerr.Bare(err).Error()
	if errors.Is(err, syscall.EBADF) {
		why += " for reading"
		goWhy += " (not open for reading)"
	}
	e := fatalf(111, "%s: %s", errRead, why)
	e.Err = fmt.Errorf("unable to read the message: %s", goWhy)
	return e
}

// reasonText is qmail's short text for the errno in err ("is a
// directory", "file descriptor not open"), else Go's own words.
func reasonText(err error) string {
	if s := qerr.Str(err); s != "unknown error" {
		return s
	}
	return qerr.Bare(err).Error()
}

func fatalf(code int, format string, a ...any) *Error {
	return &Error{Code: code, Text: fmt.Sprintf(format, a...)}
}

// lookup returns the last value of key in env and whether it is set.
func lookup(env []string, key string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		e := env[i]
		if len(e) > len(key) && e[len(key)] == '=' && e[:len(key)] == key {
			return e[len(key)+1:], true
		}
	}
	return "", false
}

func firstEnv(env []string, keys ...string) (string, bool) {
	for _, k := range keys {
		if v, ok := lookup(env, k); ok {
			return v, true
		}
	}
	return "", false
}

// envFields are the environment variables whose text qmail-inject writes
// into the header or the envelope, each group in its order of precedence
// (the first one set is the one used). The three control overrides are
// appended to addresses by the rewriting: a quoted string, a literal or
// text that does not tokenize keeps a line end, in the sender and in every
// recipient.
var envFields = [][]string{envUser, envHost, envName, {"QMAILSUSER"}, {"QMAILSHOST"}, {"QMAILIDHOST"},
	{"QMAILDEFAULTHOST"}, {"QMAILDEFAULTDOMAIN"}, {"QMAILPLUSDOMAIN"}}

// The user, host and name variables, in their order of precedence.
var (
	envUser = []string{"QMAILUSER", "MAILUSER", "USER", "LOGNAME"}
	envHost = []string{"QMAILHOST", "MAILHOST"}
	envName = []string{"QMAILNAME", "MAILNAME", "NAME"}
)

// checkEnv refuses a CR, LF or NUL in the value used of each envFields
// group. qmail writes them as they are: a line end in the name (even
// quoted, where a backslash before it does not stop it ending the line) or
// in the user or the Message-ID host starts a header field of the caller's
// choosing, and one in the sender or a control override reaches the
// envelope. sendmail refuses the same text as -F or -f; given through the
// environment it is refused here, for qmail-inject and for the sendmail
// that runs it.
func checkEnv(env []string) *Error {
	for _, keys := range envFields {
		for _, k := range keys {
			v, ok := lookup(env, k)
			if !ok {
				continue
			}
			if badText(v) {
				return fatalf(100, "CR, LF or NUL in $%s (header injection refused)", k)
			}
			break
		}
	}
	return nil
}

// badText reports whether s holds a CR, LF or NUL, which no text that
// reaches the header or the envelope may hold.
func badText(s string) bool { return strings.ContainsAny(s, "\r\n\x00") }

// checkArgs refuses a CR, LF or NUL in the -f value and in the recipient
// arguments used (none with -h). qmail quotes such an address's local part
// and queues it with the line end in it: the envelope then carries it into
// Delivered-To, the Return-Path of a delivery, the SMTP commands and the
// failure notice, each a header line or command of the caller's choosing
// (qmail-queue refuses only a NUL). sendmail refuses -f alike.
func (j *Job) checkArgs(strategy int) *Error {
	if j.Sender != nil && badText(*j.Sender) {
		return fatalf(100, "CR, LF or NUL in the -f argument (header injection refused)")
	}
	if strategy == RecipHeader {
		return nil
	}
	for _, a := range j.Args {
		if badText(a) {
			return fatalf(100, "CR, LF or NUL in the recipient argument %s (header injection refused)", strconv.Quote(a))
		}
	}
	return nil
}

// state is everything gathered while the header is read.
type state struct {
	rw         *Rewriter
	seen       [hCount]bool
	headRecips []string // To, Cc, Bcc, Apparently-To
	resRecips  []string // Resent-To, Resent-Cc, Resent-Bcc
	headFields []RecipField
	resFields  []RecipField
	tocc       []string // To and Cc addresses, for Mail-Followup-To
	rpath      *string  // first Return-Path address
	// unparsable is the first sender-type field (From, Sender,
	// Reply-To, Return-Path, ...) that does not parse: the message is
	// refused (Exec), unless keepUnparsable (Job.KeepUnparsable).
	unparsable     []byte
	keepUnparsable bool
	saved          chunks // the fields kept, as read or rewritten
	keep           bool   // the field being read line by line is kept
	delFrom        bool
	delMsgID       bool
	delRPath       bool
}

// deleted reports whether QMAILINJECT asks for fields of type ht to go.
func (st *state) deleted(ht int) bool {
	return st.delFrom && ht == hFrom || st.delMsgID && ht == hMessageID || st.delRPath && ht == hReturnPath
}

// addrField reports whether fields of type ht hold addresses (rewritten).
func addrField(ht int) bool {
	switch ht {
	case hTo, hCc, hBcc, hApparentlyTo, hResentTo, hResentCc, hResentBcc,
		hReturnPath, hSender, hFrom, hReplyTo, hReturnReceiptTo, hErrorsTo,
		hResentSender, hResentFrom, hResentReplyTo:
		return true
	}
	return false
}

// begin starts a header field from its first line (readHeader's sink). An
// address field is wanted whole, for field; any other is copied (or
// dropped) line by line as it is read, so that a huge one is held once.
func (st *state) begin(first []byte) (whole bool) {
	ht := fieldType(first)
	if addrField(ht) {
		return true
	}
	st.keep = false
	if st.deleted(ht) {
		return false
	}
	st.seen[ht] = true
	if ht != hContentLength {
		st.keep = true
		st.saved.write(first)
	}
	return false
}

// cont takes a continuation line of a field begin did not want whole.
func (st *state) cont(line []byte) {
	if st.keep {
		st.saved.write(line)
	}
}

// field handles one address field (begin wanted it whole): rewrites it,
// collects recipients and the Return-Path, and saves what stays in the
// header.
func (st *state) field(h []byte) {
	ht := fieldType(h)
	if st.deleted(ht) {
		return
	}
	st.seen[ht] = true
	var list *[]string
	var fields *[]RecipField
	tocc := false
	switch ht {
	case hTo, hCc:
		list, fields, tocc = &st.headRecips, &st.headFields, true
	case hBcc, hApparentlyTo:
		list, fields = &st.headRecips, &st.headFields
	case hResentTo, hResentCc, hResentBcc:
		list, fields = &st.resRecips, &st.resFields
	}
	parsed := false
	var got []string
	cb := func(a []Token) []Token {
		a = st.rw.Rewrite(a)
		got = append(got, cString(Unquote(a)))
		return a
	}
	if toks, ok := Tokenize(string(h)); ok {
		if out, ok := AddrList(toks, cb); ok {
			parsed = true
			h = []byte(Unparse(out, LineLen))
			switch {
			case list != nil:
				*list = append(*list, got...)
				if tocc {
					st.tocc = append(st.tocc, got...)
				}
			case ht == hReturnPath && st.rpath == nil && len(got) > 0:
				st.rpath = &got[0]
			}
		}
	}
	if !parsed && list == nil && st.unparsable == nil && !st.keepUnparsable {
		// A sender-type field qmail cannot parse ends qmail-inject
		// (spec: fatal, 100); a recipient-type one is left as it is
		// and gives no recipients, as notqmail does.
		st.unparsable = slices.Clone(h)
	}
	if fields != nil {
		name := h
		if i := bytes.IndexByte(name, ':'); i >= 0 {
			name = bytes.TrimRight(name[:i], " \t")
		}
		f := RecipField{Name: string(name), Parsed: parsed}
		if parsed {
			f.Addrs = got
		}
		*fields = append(*fields, f)
	}
	switch ht {
	case hBcc, hResentBcc, hReturnPath:
		return
	}
	st.saved.write(h)
}

// cString cuts an address taken from the header at its first NUL byte:
// qmail-inject keeps such addresses as C strings, so the envelope (and the
// Return-Path of -n, and Mail-Followup-To) get only what comes before it.
// Without the cut the envelope would carry a NUL that qmail-queue refuses,
// a temporary failure retried for ever.
func cString(s string) string {
	if i := strings.IndexByte(s, 0); i >= 0 {
		return s[:i]
	}
	return s
}

// parseArg turns a -f value or a recipient argument into an envelope
// address: its local part is quoted so that RFC 822 syntax in it means
// nothing, then the whole is rewritten as one address.
func (rw *Rewriter) parseArg(arg string) (string, bool) {
	toks, ok := Tokenize(address.Quote(arg))
	if !ok {
		return "", false
	}
	return Unquote(rw.Rewrite(toks)), true
}

// controls reads the rewriting hosts, environment first.
func controls(root string, env []string) (host, domain, plus, idhost string, err error) {
	d := control.Open(root)
	get := func(envname, file string) string {
		if err != nil {
			return ""
		}
		if v, ok := lookup(env, envname); ok {
			return v
		}
		var v string
		v, err = d.LineOrMe(file)
		return v
	}
	host = get("QMAILDEFAULTHOST", "defaulthost")
	domain = get("QMAILDEFAULTDOMAIN", "defaultdomain")
	plus = get("QMAILPLUSDOMAIN", "plusdomain")
	idhost = get("QMAILIDHOST", "idhost")
	return
}

// Run performs the job and returns the exit code, printing any fatal
// error as "qmail-inject: fatal: ..." on Stderr.
func (j *Job) Run() int {
	if err := j.Exec(); err != nil {
		name := j.Name
		if name == "" {
			name = "qmail-inject"
		}
		if err.Text != "" {
			fmt.Fprintf(j.Stderr, "%s: fatal: %s\n", name, err.Text)
		}
		return err.Code
	}
	return 0
}

// Exec performs the job and returns nil or the failure, printing nothing
// on Stderr (only -n output goes to Stdout).
func (j *Job) Exec() *Error {
	now := j.Now
	if now.IsZero() {
		now = time.Now()
	}
	pid := j.Pid
	if pid == 0 {
		pid = os.Getpid()
	}
	env := j.Env
	if e := checkEnv(env); e != nil {
		return e
	}
	strategy := j.Strategy
	if strategy == RecipDefault {
		strategy = RecipHeader
		if len(j.Args) > 0 {
			strategy = RecipArgs
		}
	}
	if e := j.checkArgs(strategy); e != nil {
		return e
	}
	host, domain, plus, idhost, err := controls(j.Root, env)
	if err != nil {
		return readFailed("controls", err)
	}
	rw := NewRewriter(host, domain, plus)
	rw.BareUTF8Domain = j.BareUTF8Domain
	mft, err := mftLists(env)
	if err != nil {
		return readFailed("$QMAILMFTFILE", err)
	}

	flags, _ := lookup(env, "QMAILINJECT")
	st := &state{rw: rw,
		delFrom:        strings.IndexByte(flags, 'f') >= 0,
		delMsgID:       strings.IndexByte(flags, 'i') >= 0,
		delRPath:       strings.IndexByte(flags, 's') >= 0 || j.IgnoreReturnPath,
		keepUnparsable: j.KeepUnparsable,
	}
	nameComment := strings.IndexByte(flags, 'c') >= 0
	hackRecip := strings.IndexByte(flags, 'r') >= 0
	hackMess := strings.IndexByte(flags, 'm') >= 0

	var sender *string
	if j.Sender != nil {
		s, ok := rw.parseArg(*j.Sender)
		if !ok {
			return fatalf(100, "unable to parse address: %s", *j.Sender)
		}
		sender = &s
	}
	var recips []string
	if strategy != RecipHeader {
		for _, a := range j.Args {
			if a == "" {
				// No address at all: qmail's parser finds none in an
				// empty argument, so it adds no recipient (and sendmail
				// then refuses a message for nobody).
				continue
			}
			r, ok := rw.parseArg(a)
			if !ok {
				return fatalf(100, "unable to parse address: %s", a)
			}
			recips = append(recips, r)
		}
	}

	body, rerr := readHeader(bufio.NewReaderSize(j.Stdin, 64<<10), st)
	if rerr != nil {
		return inputFailed(rerr)
	}
	if st.unparsable != nil {
		return fatalf(100, "unable to parse this line:\n%s", bytes.TrimSuffix(st.unparsable, []byte("\n")))
	}

	user, ok := firstEnv(env, envUser...)
	if !ok {
		user = "anonymous"
	}
	mhost, hasHost := firstEnv(env, envHost...)
	name, hasName := firstEnv(env, envName...)

	resent := st.seen[hResentSender] || st.seen[hResentFrom] || st.seen[hResentReplyTo] ||
		st.seen[hResentTo] || st.seen[hResentCc] || st.seen[hResentBcc] ||
		st.seen[hResentDate] || st.seen[hResentMessageID]

	if sender == nil && st.rpath != nil {
		s := *st.rpath
		if hackRecip {
			s += "-@[]"
		}
		sender = &s
	}
	if sender == nil {
		suser, ok := lookup(env, "QMAILSUSER")
		if !ok {
			suser = user
		}
		shost, hasS := lookup(env, "QMAILSHOST")
		if !hasS {
			shost, hasS = mhost, hasHost
		}
		if hackMess {
			suser += "-" + strconv.FormatInt(now.Unix(), 10) + "." + strconv.Itoa(pid)
		}
		if hackRecip {
			suser += "-"
		}
		s := address.QuoteLocal(suser)
		if hasS {
			s += "@" + shost
		}
		if toks, ok := Tokenize(s); ok {
			s = Unquote(rw.Rewrite(toks))
		}
		if hackRecip {
			s += "-@[]"
		}
		sender = &s
	}

	if at := strings.LastIndexByte(*sender, '@'); j.VERP && at > 0 && !strings.HasSuffix(*sender, "-@[]") {
		s := (*sender)[:at] + "-" + (*sender)[at:] + "-@[]"
		sender = &s
	}
	var hd bytes.Buffer
	if j.Print {
		hd.WriteString("Return-Path: <" + address.Quote(*sender) + ">\n")
	}
	msgid := func() string {
		return "<" + now.UTC().Format("20060102150405") + "." + strconv.Itoa(pid) + ".qmail@" + idhost + ">\n"
	}
	from := func() string {
		toks := []Token{{Kind: Atom, S: "From"}, {Kind: Colon}}
		if hasName && !nameComment {
			toks = append(toks, Token{Kind: Quote, S: name}, Token{Kind: Left})
		}
		uk := Atom
		if address.NeedsQuote(user) {
			uk = Quote
		}
		toks = append(toks, Token{Kind: uk, S: user})
		if hasHost {
			// The host as text, as qmail writes it into the field it then
			// parses: a [literal] stays one.
			toks = append(toks, Token{Kind: At})
			if ht, ok := Tokenize(mhost); ok && len(ht) > 0 {
				toks = append(toks, ht...)
			} else {
				toks = append(toks, Token{Kind: Atom, S: mhost})
			}
		}
		if hasName && !nameComment {
			toks = append(toks, Token{Kind: Right})
		}
		if hasName && nameComment {
			toks = append(toks, Token{Kind: Comment, S: name})
		}
		// The domain's UTF-8 words bare when Rewrite writes them so
		// (sendmail); the name's and the local part's stay quoted, as
		// qmail writes them.
		if rw.BareUTF8Domain {
			toks = BareDomainUTF8(toks)
		}
		s := Unparse(toks, LineLen)
		if t, ok := Tokenize(s); ok {
			if out, ok := AddrList(t, func(a []Token) []Token { return rw.Rewrite(a) }); ok {
				s = Unparse(out, LineLen)
			}
		}
		return s
	}
	if resent {
		if !st.seen[hResentDate] {
			hd.WriteString("Resent-Date: " + qdate.Header(now) + "\n")
		}
		if !st.seen[hResentMessageID] {
			hd.WriteString("Resent-Message-ID: " + msgid())
		}
		if !st.seen[hResentFrom] {
			hd.WriteString("Resent-" + from())
		}
		if !st.seen[hResentTo] && !st.seen[hResentCc] {
			hd.WriteString("Resent-Cc: recipient list not shown: ;\n")
		}
	} else {
		if !st.seen[hDate] {
			hd.WriteString("Date: " + qdate.Header(now) + "\n")
		}
		if !st.seen[hMessageID] {
			hd.WriteString("Message-ID: " + msgid())
		}
		if !st.seen[hFrom] {
			hd.WriteString(from())
		}
		if !st.seen[hTo] && !st.seen[hCc] {
			hd.WriteString("Cc: recipient list not shown: ;\n")
		}
		if !st.seen[hMailFollowupTo] {
			hd.WriteString(st.followup(mft))
		}
	}
	if strategy != RecipArgs {
		from, fields := st.headRecips, st.headFields
		if resent {
			from, fields = st.resRecips, st.resFields
		}
		if j.HeaderRecipients != nil {
			var err error
			if from, err = j.HeaderRecipients(fields); err != nil {
				return fatalf(100, "%s", err)
			}
		}
		recips = append(recips, from...)
	}

	// The header read stays where it is: a copy would double what a huge
	// header costs.
	header := io.MultiReader(&hd, st.saved.reader())

	if j.NeedRecipients && len(recips) == 0 {
		return fatalf(100, ErrNoRecipients)
	}
	if j.Print {
		_, err := io.Copy(j.Stdout, io.MultiReader(header, body))
		if body.err != nil {
			return inputFailed(body.err)
		}
		if err != nil {
			return fatalf(111, "unable to write output")
		}
		return nil
	}
	// The body goes to the queue as it is read; if reading it fails, the
	// queue gets no envelope and queues nothing (qq.Queue).
	pid, qerr2 := qq.Queue(qq.Options{Root: j.Root, Env: env, Started: j.Started},
		io.MultiReader(header, body), &qq.Envelope{Sender: *sender, Recipients: recips})
	if body.err != nil {
		return inputFailed(body.err)
	}
	if qerr2 != nil {
		e := fatalf(qerr.ExitCode(qerr2), "%s", qerr2.Error())
		e.Queue = true
		if pid == 0 {
			// Not started: qmail's "unable to exec qq" in Text, and
			// why in Err for a caller whose messages are its own.
			e.Err = fmt.Errorf("%s: %s", qerr2.Error(), qq.StartFailure(qerr2))
		}
		return e
	}
	return nil
}

// mftLists reads the list addresses of the file QMAILMFTFILE names. A
// file that does not exist (or an empty name) asks for no
// Mail-Followup-To; one that cannot be read is a read error, as for a
// control file.
func mftLists(env []string) ([]string, error) {
	fn, ok := lookup(env, "QMAILMFTFILE")
	if !ok || fn == "" {
		return nil, nil
	}
	b, err := qhome.ReadRegular(fn)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return control.ListLines(b), nil
}

// followup builds the Mail-Followup-To field that QMAILMFTFILE asks for:
// when a To or Cc address is one of the list addresses in that file, every
// To and Cc address is listed, the last field's first.
func (st *state) followup(lists []string) string {
	if len(lists) == 0 || len(st.tocc) == 0 {
		return ""
	}
	hit := false
	for _, a := range st.tocc {
		for _, l := range lists {
			if sameList(a, l) {
				hit = true
			}
		}
	}
	if !hit {
		return ""
	}
	parts := make([]string, 0, len(st.tocc))
	for i := len(st.tocc) - 1; i >= 0; i-- {
		a := st.tocc[i]
		parts = append(parts, address.Quote(a)) // a UTF-8 local part quoted, as in To and Cc
	}
	return "Mail-Followup-To: " + strings.Join(parts, ",\n  ") + "\n"
}

// sameList reports whether the To or Cc address a is the list address l:
// the local parts equal but for ASCII case, as qmail compares them, and
// the domains equal as domains (idna.Fold: bücher.example is
// xn--bcher-kva.example).
func sameList(a, l string) bool {
	al, ad, _ := address.Split(a)
	ll, ld, _ := address.Split(l)
	return address.LowerASCII(al) == address.LowerASCII(ll) && idna.Fold(ad) == idna.Fold(ld)
}
