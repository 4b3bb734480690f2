package sched

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/hqmail/hqmail/pkg/control"
	"github.com/hqmail/hqmail/pkg/hold"
	"github.com/hqmail/hqmail/pkg/idna"
	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qhome"
)

// Control-file defaults (spec/injection.md §4).
const (
	defLifetime = 604800
	// MaxConcurrency is the largest control value accepted; the effective
	// limit is also capped by the spawner's announcement (at most 255 in
	// qmail's one byte; qmail-rspawn announces 500 in the wide form).
	MaxConcurrency = 500
)

// config holds the control values qmail-send uses.
type config struct {
	lifetime         int64
	concurrency      [2]int
	envnoathost      string
	bouncefrom       string
	bouncehost       string
	doublebouncehost string
	doublebounceto   string
	me               string // default for locals, kept for HUP
	haveMe           bool   // control/me existed at start (else no default on HUP)
	locals           map[string]bool
	percenthack      map[string]bool
	vdoms            map[string]string
	dsn              bool // control/bounceformat says "dsn"
	hold             holdState
}

// holdState is the hold flags: local held or not; remote not held, all
// held, or held for a list of domains.
type holdState struct {
	local      bool
	remoteAll  bool
	remoteDoms []string // lowercased; ".x" matches subdomains of x
}

func (h holdState) remoteAny() bool { return h.remoteAll || len(h.remoteDoms) > 0 }

// held reports whether channel c is held entirely.
func (h holdState) held(c int) bool {
	if c == chanLocal {
		return h.local
	}
	return h.remoteAll
}

// domainHeld reports whether a remote recipient's domain is on the list.
func (h holdState) domainHeld(addr string) bool {
	i := strings.LastIndexByte(addr, '@')
	return hold.MatchDomain(h.remoteDoms, addr[i+1:])
}

// describe renders the remote hold for the status file.
func (h holdState) describeRemote() string {
	switch {
	case h.remoteAll:
		return "all"
	case len(h.remoteDoms) > 0:
		return strings.Join(h.remoteDoms, " ")
	}
	return "no"
}

// ParseHoldRemote interprets the contents of control/holdremote with
// pkg/hold's rules (the ones qmailctl and qmail-qread use): all is true
// when the first line is "1", "*" or empty (or no list line is left);
// otherwise domains lists the list lines, lowercased.
func ParseHoldRemote(b []byte) (all bool, domains []string) {
	f := hold.Parse(b)
	return f.All, f.Lines()
}

// readHoldLocal reports whether control/holdlocal exists.
func readHoldLocal(ctl *control.Dir) (bool, error) { return ctl.Exists("holdlocal") }

// readHoldRemote reads control/holdremote.
func readHoldRemote(ctl *control.Dir) (all bool, domains []string, err error) {
	b, err := qhome.ReadRegular(filepath.Join(ctl.Path, "holdremote"))
	switch {
	case err == nil:
		all, domains = ParseHoldRemote(b)
		return all, domains, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil, nil
	}
	return false, nil, err
}

// readHold reads both hold files. A read error other than "does not
// exist" is returned.
func readHold(ctl *control.Dir) (holdState, error) {
	var h holdState
	var err error
	if h.local, err = readHoldLocal(ctl); err != nil {
		return h, err
	}
	h.remoteAll, h.remoteDoms, err = readHoldRemote(ctl)
	return h, err
}

// setOf is a list of domains as a set keyed as control.Locals keys
// locals: folded (idna.Fold), so that either spelling of an IDN is found.
func setOf(list []string) map[string]bool {
	m := make(map[string]bool, len(list))
	for _, s := range list {
		m[idna.Fold(s)] = true
	}
	return m
}

// readVdoms reads control/virtualdomains.
func readVdoms(ctl *control.Dir) (map[string]string, error) {
	l, _, err := ctl.ReadList("virtualdomains")
	if err != nil {
		return nil, err
	}
	return VirtualDomains(l), nil
}

var errNoLocals = errors.New("neither control/locals nor control/me exists")

// controlsFailure says why loadConfig failed, for the alert that stops
// the start: qmail's "unable to read controls" (spec/scheduler.md; log
// monitors match it), then the file (the one the error names, which is
// control/me when a host name file that defaults to it is missing and me
// cannot be read) relative to root with the reason in qmail's words
// ("control/concurrencyremote: access denied"), and where to look.
func controlsFailure(root string, err error) string {
	what := err.Error()
	var pe *fs.PathError
	if errors.As(err, &pe) {
		name := pe.Path
		if rel, err := filepath.Rel(root, name); err == nil && !strings.HasPrefix(rel, "..") {
			name = rel
		}
		what = safe(name) + ": " + readReason(pe.Err)
	}
	return "unable to read controls: " + what + " (qmail-install -check -root " + safe(root) + " says how to fix it)"
}

// readReason is why a control file could not be read: qmail's text for
// an errno ("access denied", "is a directory", "symbolic link loop"; the
// other programs mostly use the same words, though not for every errno),
// and, in the words qmail-showctl, sendmail and qmail-remote use, "not a
// regular file" for a FIFO or device put where a file belongs (pkg/qhome refuses it without an errno: qerr.Str called it
// "unknown error"), and any other error's own text, its spaces kept.
// Reading has no size limit, so no "too large" case reaches here.
func readReason(err error) string {
	var errno syscall.Errno
	switch {
	case errors.As(err, &errno):
		return qerr.Str(err)
	case errors.Is(err, qhome.ErrNotRegular):
		return "not a regular file"
	}
	return safeWords(qerr.Bare(err).Error())
}

// loadConfig reads every control file qmail-send uses at start.
func loadConfig(root string) (*config, error) {
	ctl := control.Open(root)
	cf := &config{}
	var err error
	lt, err := ctl.ReadInt("queuelifetime", defLifetime)
	if err != nil {
		return nil, err
	}
	cf.lifetime = int64(lt)
	if cf.concurrency[chanLocal], err = ctl.ReadInt("concurrencylocal", qhome.DefConcurrencyLocal); err != nil {
		return nil, err
	}
	if cf.concurrency[chanRemote], err = ctl.ReadInt("concurrencyremote", qhome.DefConcurrencyRemote); err != nil {
		return nil, err
	}
	for c := range cf.concurrency {
		cf.concurrency[c] = min(cf.concurrency[c], MaxConcurrency)
	}
	if cf.envnoathost, err = ctl.LineOrMe("envnoathost"); err != nil {
		return nil, err
	}
	if cf.bouncefrom, err = ctl.LineDefault("bouncefrom", "MAILER-DAEMON"); err != nil {
		return nil, err
	}
	if cf.bouncehost, err = ctl.LineOrMe("bouncehost"); err != nil {
		return nil, err
	}
	if cf.doublebouncehost, err = ctl.LineOrMe("doublebouncehost"); err != nil {
		return nil, err
	}
	if cf.doublebounceto, err = ctl.LineDefault("doublebounceto", "postmaster"); err != nil {
		return nil, err
	}
	me, haveMe, err := ctl.Me()
	if err != nil {
		return nil, err
	}
	cf.me, cf.haveMe = me, haveMe
	locals, ok, err := ctl.Locals(me, haveMe)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errNoLocals
	}
	cf.locals = locals
	ph, _, err := ctl.ReadList("percenthack")
	if err != nil {
		return nil, err
	}
	cf.percenthack = setOf(ph)
	if cf.vdoms, err = readVdoms(ctl); err != nil {
		return nil, err
	}
	bf, err := ctl.LineDefault("bounceformat", "qsbmf")
	if err != nil {
		return nil, err
	}
	cf.dsn = strings.EqualFold(bf, "dsn")
	h, err := readHold(ctl)
	if err != nil {
		return nil, err
	}
	cf.hold = h
	return cf, nil
}
