package linkwatch

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hqmail/hqmail/pkg/ctl"
	"github.com/hqmail/hqmail/pkg/hold"
)

// ctlActions holds and releases through qmailctl's code, in-process.
type ctlActions struct{ root string }

func (a ctlActions) run(verb string) error {
	// Recorded first, as the hooks do: qmailctl boot (a restart of qmail
	// while the link is up) then holds nothing, where the watcher, which
	// acts only on a change, would leave the boot hold in place. Recorded
	// and applied as the hooks do it too (qmailctl linkwant, then linkwant
	// apply), under the control directory's lock, which apply lets go
	// before it waits for qmail-send: a hook's event is then never held
	// up behind the watcher's wait, nor overtaken by it.
	if err := a.record(verb); err != nil {
		return err
	}
	afterRecord()
	return a.apply(verb)
}

// record writes verb to control/linkwant (qmailctl linkwant VERB).
func (a ctlActions) record(verb string) error {
	var out, errb bytes.Buffer
	if code := ctl.Main(a.root, []string{"linkwant", verb}, &out, &errb); code != ctl.ExitOK {
		return fmt.Errorf("unable to write %s: %s", hold.LinkWantFile, strings.TrimSpace(errb.String()))
	}
	return nil
}

// apply applies what linkwant says (qmailctl linkwant apply) and checks
// that it is verb.
func (a ctlActions) apply(verb string) error {
	var out, errb bytes.Buffer
	code := ctl.Main(a.root, []string{"linkwant", "apply"}, &out, &errb)
	// apply prints the word it applied first, alone on its line: a hook
	// may have recorded the other one in between, and then the flag is
	// not the watcher's (an error: the watcher acts again).
	applied, _, _ := strings.Cut(out.String(), "\n")
	switch {
	case code != ctl.ExitOK && code != ctl.ExitNotRunning:
		// The flag may have been changed all the same (qmail-send did
		// not confirm): an error, so that the watcher does not take the
		// old state for the one in force.
		return fmt.Errorf("qmailctl linkwant apply (%s): exit %d: %s", verb, code, strings.TrimSpace(errb.String()))
	case applied != verb:
		return fmt.Errorf("qmailctl linkwant apply (%s) applied %q: another event was recorded meanwhile", verb, applied)
	}
	// Not running: the flag is set, the next start honours it.
	return nil
}

// afterRecord runs between the record of a decision and its apply (tests
// record a hook's word there).
var afterRecord = func() {}

func (a ctlActions) Hold(string) error    { return a.run("hold") }
func (a ctlActions) Release(string) error { return a.run("release") }

// RecordRelease and ApplyRelease are Release in its two steps (twoStep).
func (a ctlActions) RecordRelease() error { return a.record("release") }
func (a ctlActions) ApplyRelease() error  { return a.apply("release") }

// Wanted returns what control/linkwant says now (qmailctl linkwant).
func (a ctlActions) Wanted() (string, error) {
	var out, errb bytes.Buffer
	if code := ctl.Main(a.root, []string{"linkwant"}, &out, &errb); code != ctl.ExitOK {
		return "", errors.New(strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// Main is qmail-linkwatch(8).
func Main(root string, args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("qmail-linkwatch", flag.ContinueOnError)
	fl.SetOutput(stderr)
	var cfg Config
	fl.StringVar(&cfg.Iface, "iface", "", "count the link up only when the kernel's route goes through this interface (default: any)")
	fl.DurationVar(&cfg.UpDelay, "up-delay", 10*time.Second, "the link must stay up this long before remote delivery is released")
	fl.StringVar(&cfg.Probe, "probe", "", "host:port, port a number (e.g. the smarthost), that must accept a TCP connection before release")
	fl.DurationVar(&cfg.ProbeTimeout, "probe-timeout", 5*time.Second, "time limit of the probe connection")
	fl.BoolVar(&cfg.Metered, "metered", false, "keep remote delivery held while NetworkManager reports the link as metered")
	fl.DurationVar(&cfg.Recheck, "recheck", 30*time.Second, "re-evaluate this often even without netlink events")
	check := fl.Bool("check", false, "print whether the daemon would count the link as up now (with -metered, -probe) and exit (0 up, 1 down)")
	fl.Usage = func() {
		fmt.Fprintln(stderr, "usage: qmail-linkwatch [options]   hold/release remote delivery as the link goes down/up")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 100
	}
	if fl.NArg() != 0 {
		fl.Usage()
		return 100
	}
	if cfg.Probe != "" {
		if err := checkProbe(cfg.Probe); err != nil {
			// A probe that can never connect would keep mail held for
			// good: refused here, before anything is held.
			fmt.Fprintf(stderr, "qmail-linkwatch: -probe %q: %v\n", cfg.Probe, err)
			fl.Usage()
			return 100
		}
	}
	if cfg.Metered {
		if _, err := exec.LookPath("nmcli"); err != nil {
			// nmMetered then finds every link not metered: -metered
			// would do nothing without a word.
			fmt.Fprintln(stderr, "qmail-linkwatch: warning: -metered asks NetworkManager's nmcli, which is not on PATH: every link counts as not metered")
		}
	}
	if *check {
		return checkNow(cfg, DefaultHooks(cfg), stdout, stderr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	logf := func(format string, a ...any) {
		fmt.Fprintf(stderr, "qmail-linkwatch: "+format+"\n", a...)
	}
	if err := Run(ctx, cfg, DefaultHooks(cfg), ctlActions{root}, logf); err != nil {
		fmt.Fprintf(stderr, "qmail-linkwatch: fatal: %v\n", err)
		return 111
	}
	return 0
}

// checkProbe checks the form of -probe: host:port (an IPv6 address in
// brackets), the host not empty, the port a number from 1 to 65535. Only
// the form: whether the host resolves is the probe's own business.
func checkProbe(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("not host:port")
	}
	if host == "" {
		return errors.New("no host before the port")
	}
	if strings.ContainsAny(host, " \t\r\n") {
		return errors.New("blank in the host")
	}
	if port == "" || strings.Trim(port, "0123456789") != "" {
		return fmt.Errorf("port %q is not a number", port)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %s is not from 1 to 65535", port)
	}
	return nil
}

// checkNow is -check: one look, judged as the daemon judges a look (the
// kernel's route, then -metered and -probe when given, in that order), with
// the reason worded as the daemon logs it. The up-delay is not waited for.
func checkNow(cfg Config, h Hooks, stdout, stderr io.Writer) int {
	snap, err := h.Snapshot()
	if err != nil {
		fmt.Fprintf(stderr, "qmail-linkwatch: fatal: %v\n", err)
		return 111
	}
	up, why := snap.LinkUp(cfg.Iface)
	switch {
	case !up:
	case cfg.meteredNow(h, snap):
		up, why = false, meteredWhy(why)
	case cfg.Probe != "":
		if err := probe(cfg.Probe, h.Dial); err != nil {
			up, why = false, probeWhy(why, cfg.Probe, err)
		}
	}
	if up {
		fmt.Fprintf(stdout, "up: %s\n", why)
		return 0
	}
	fmt.Fprintf(stdout, "down: %s\n", why)
	return 1
}
