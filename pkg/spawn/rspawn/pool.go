package rspawn

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/hqmail/hqmail/pkg/control"
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
	}
	return p
}

// cacheTime reads control/smtpcache (seconds; a bad or unreadable file
// means the default).
func (p *Pool) cacheTime() time.Duration {
	n, err := control.Open(p.Root).ReadInt("smtpcache", int(DefaultCache/time.Second))
	if err != nil || n < 0 {
		return DefaultCache
	}
	return time.Duration(n) * time.Second
}

// held reports whether control/holdremote exists.
func (p *Pool) held() bool {
	_, err := os.Lstat(filepath.Join(p.Root, "control", "holdremote"))
	return err == nil
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
	reply, res := p.Do(strings.ToLower(host), start, req, int(d.Message.Fd()))
	switch res {
	case keep.NoProcess:
		return spawn.Status{}, false
	case keep.Crashed:
		return spawn.Status{Signaled: true}, true
	}
	d.Output.Write(reply)
	return spawn.Status{}, true
}
