package rspawn

import (
	"errors"
	"io/fs"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hqmail/hqmail/pkg/control"
	"github.com/hqmail/hqmail/pkg/hold"
	"github.com/hqmail/hqmail/pkg/idna"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/remote"
	"github.com/hqmail/hqmail/pkg/spawn"
	"github.com/hqmail/hqmail/pkg/spawn/keep"
)

// Pool runs deliveries through qmail-remote processes in keep mode
// (qmail-remote -k, see package remote and package keep): a process that
// has delivered to a host stays alive, with its SMTP connection open, for
// the next delivery to the same host, for as long as control/smtpcache
// says (seconds, default DefaultCache; 0 turns keep mode off: one
// qmail-remote per delivery, as in qmail). The processes run as the
// spawner's own user, like one-shot qmail-remote; the message goes to them
// as a descriptor over the socket, so they see exactly what a one-shot run
// sees on fd 0, and their answer is exactly a one-shot run's output. Idle
// processes are closed at once while control/holdremote exists, so a held
// link sees no traffic from kept connections.
type Pool struct {
	keep.Pool          // Program is qmail-remote's path
	Env       []string // the environment of the processes (nil: ours)
	Root      string   // the tree: control/smtpcache, control/holdremote

	mu       sync.Mutex
	routesID routesID     // control/smtproutes as last read
	routes   remote.Table // its lines
}

// routesID tells one version of control/smtproutes from another.
type routesID struct {
	ok         bool
	ino, size  int64
	mtime, dev int64
}

// DefaultCache is the default of control/smtpcache.
const DefaultCache = 5 * time.Second

// NewPool returns the pool for program in the tree at root.
func NewPool(program, root string, env []string) *Pool {
	p := &Pool{Env: env, Root: root}
	p.Pool = keep.Pool{
		Program:  program,
		Hello:    remote.KeepHello,
		Cache:    p.cacheTime,
		Held:     p.held,
		MaxReply: spawn.MaxOutput,
		Limit:    concurrency(root),
	}
	return p
}

// concurrency is qmail-send's remote concurrency, read as qmail-send reads
// it at start (control/concurrencyremote, default 20, at most the spawner's
// limit): the kept processes, busy and idle, are held to it, so that there
// are never more connections than qmail, one per delivery, would open.
func concurrency(root string) int {
	n, err := control.Open(root).ReadInt("concurrencyremote", qhome.DefConcurrencyRemote)
	if err != nil {
		n = qhome.DefConcurrencyRemote
	}
	return max(min(n, spawn.MaxLimit), 1)
}

// key is the pool key of a delivery to domain: the relay and port when
// control/smtproutes routes the domain (qmail-remote then connects there
// whatever the domain, and keeps the connection for any delivery routed
// the same way; the relay in remote.RelayKey's form, as qmail-remote's
// own key, so that "smarthost.test." and "SMARTHOST.test" are one relay),
// else the domain. A relay's key has a space, which no
// domain has.
func (p *Pool) key(domain string) string {
	domain = idna.Fold(domain) // either spelling of an IDN: one key
	path := filepath.Join(p.Root, "control", "smtproutes")
	var id routesID
	var st syscall.Stat_t
	if syscall.Stat(path, &st) == nil {
		id = routesID{ok: true, ino: int64(st.Ino), size: st.Size, mtime: st.Mtim.Nano(), dev: int64(st.Dev)}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if id != p.routesID {
		p.routesID, p.routes = id, nil
		if id.ok {
			lines, _, err := control.Open(p.Root).ReadList("smtproutes")
			if err != nil {
				p.routesID = routesID{} // read again next time
			}
			p.routes = remote.ParseTable(lines)
		}
	}
	if r, ok := p.routes.LookupRoute(domain); ok {
		return "relay " + remote.RelayKey(r.Relay) + " " + strconv.Itoa(r.Port)
	}
	return domain
}

// cacheTime reads control/smtpcache (seconds; a missing file or one
// without leading digits means the default). A file that cannot be read
// turns keep mode off: it may hold the 0 an admin wrote so that nothing
// stays connected over a dial-up link.
func (p *Pool) cacheTime() time.Duration {
	n, err := control.Open(p.Root).ReadInt("smtpcache", int(DefaultCache/time.Second))
	if err != nil {
		return 0
	}
	return time.Duration(n) * time.Second
}

// held reports whether control/holdremote holds all remote delivery (the
// link is down, or about to be): then no connection may stay open. A hold
// of some domains (a VPN's) leaves the others' connections alone: their
// deliveries go on. A flag that cannot be read counts as a hold of all,
// as qmail-send reads it.
func (p *Pool) held() bool {
	// Read as qmail-send reads it (a FIFO there would hold qmail-rspawn
	// for ever, and with it every remote delivery).
	b, err := qhome.ReadRegular(filepath.Join(p.Root, "control", hold.RemoteFile))
	if errors.Is(err, fs.ErrNotExist) {
		return false
	}
	return err != nil || hold.Parse(b).All
}

// Deliver makes d through a kept process. ok is false when keep mode is off
// (control/smtpcache 0, or the program refused it) or no process could be
// started: the caller falls back to a one-shot qmail-remote.
func (p *Pool) Deliver(d *spawn.Delivery) (st spawn.Status, ok bool) {
	host := d.Domain()
	req := make([]byte, 0, len(host)+len(d.Sender)+len(d.Recipient)+3)
	req = append(append(req, host...), 0)
	req = append(append(req, d.Sender...), 0)
	req = append(append(req, d.Recipient...), 0)
	start := func() *exec.Cmd {
		cmd := exec.Command(p.Program, "-k")
		cmd.Args[0] = "qmail-remote"
		cmd.Env = p.Env
		return cmd
	}
	reply, res := p.Do(p.key(host), start, req, int(d.Message.Fd()))
	switch res {
	case keep.NoProcess:
		return spawn.Status{}, false
	case keep.Crashed:
		// Its fd 2 goes into the output, as a one-shot run's would:
		// Translate finds the reason of the crash there.
		d.Output.Write(reply)
		return spawn.Status{Signaled: true}, true
	}
	d.Output.Write(reply)
	return spawn.Status{}, true
}
