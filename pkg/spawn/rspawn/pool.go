package rspawn

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/control"
	"github.com/hqmail/hqmail/pkg/remote"
	"github.com/hqmail/hqmail/pkg/spawn"
)

// Pool runs deliveries through qmail-remote processes in keep mode
// (qmail-remote -k, see package remote): a process that has delivered to a
// host stays alive, with its SMTP connection open, for the next delivery to
// the same host, for as long as control/smtpcache says (seconds, default
// DefaultCache; 0 turns keep mode off: one qmail-remote per delivery, as in
// qmail). The processes run as the spawner's own user, like one-shot
// qmail-remote; the message goes to them as a descriptor over a socket, so
// they see exactly what a one-shot run sees on fd 0.
//
// Policy: a delivery takes the most recently idle process for its host, or
// starts one. A process whose delivery ended goes back idle; idle ones are
// closed (the process sends QUIT and exits) after the cache time, at once
// while control/holdremote exists (a held link sees no traffic from kept
// connections), and the oldest first beyond MaxIdle. A process that dies
// during a delivery is reported as a crashed qmail-remote; an idle one found
// dead when a delivery would be handed to it is replaced.
type Pool struct {
	Program string
	Env     []string
	Root    string // the tree: control/smtpcache, control/holdremote

	mu      sync.Mutex
	idle    []*worker // oldest first
	reaping bool
	// refused is set when Program, started as "qmail-remote -k", did not
	// greet with remote.KeepHello (a wrapper script, another program):
	// keep mode is then off for that file until it changes.
	refused *fileID
}

// fileID identifies a version of a file.
type fileID struct {
	dev, ino uint64
	size     int64
	mtime    time.Time
}

func statID(path string) *fileID {
	var st unix.Stat_t
	if unix.Stat(path, &st) != nil {
		return nil
	}
	return &fileID{dev: st.Dev, ino: st.Ino, size: st.Size, mtime: time.Unix(st.Mtim.Unix())}
}

// helloTimeout bounds the wait for a new process's greeting (a variable
// for the tests).
var helloTimeout = 5 * time.Second

// DefaultCache is the default of control/smtpcache.
const DefaultCache = 5 * time.Second

// MaxIdle bounds the idle processes kept.
const MaxIdle = 64

// reapEvery is how often idle processes are looked at.
const reapEvery = 250 * time.Millisecond

// replyMax bounds one reply packet (qmail-remote's reports are a few KB).
const replyMax = spawn.MaxOutput

type worker struct {
	conn  *net.UnixConn
	host  string
	until time.Time // idle: close after this
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

// Enabled reports whether keep mode is on: control/smtpcache is not 0 and
// the program has not refused keep mode.
func (p *Pool) Enabled() bool {
	if p.cacheTime() <= 0 {
		return false
	}
	p.mu.Lock()
	refused := p.refused
	p.mu.Unlock()
	if refused == nil {
		return true
	}
	if now := statID(p.Program); now != nil && *now != *refused {
		p.mu.Lock()
		p.refused = nil // a new program: ask it again
		p.mu.Unlock()
		return true
	}
	return false
}

// Deliver makes d through a kept process. ok is false when no process
// could be started (the caller falls back to a one-shot qmail-remote).
func (p *Pool) Deliver(d *spawn.Delivery) (st spawn.Status, ok bool) {
	host := d.Domain()
	req := make([]byte, 0, len(host)+len(d.Sender)+len(d.Recipient)+3)
	req = append(append(req, host...), 0)
	req = append(append(req, d.Sender...), 0)
	req = append(append(req, d.Recipient...), 0)
	rights := unix.UnixRights(int(d.Message.Fd()))
	for attempt := 0; attempt < 2; attempt++ {
		w := p.take(host)
		fresh := w == nil
		if fresh {
			if w = p.start(host); w == nil {
				return spawn.Status{}, false
			}
		}
		if _, _, err := w.conn.WriteMsgUnix(req, rights, nil); err != nil {
			w.conn.Close()
			if fresh {
				return spawn.Status{Signaled: true}, true
			}
			continue // died just now while idle: once more with a new process
		}
		buf := make([]byte, replyMax)
		n, _, flags, _, err := w.conn.ReadMsgUnix(buf, nil)
		if err != nil || n == 0 || flags&unix.MSG_TRUNC != 0 {
			w.conn.Close()
			return spawn.Status{Signaled: true}, true
		}
		d.Output.Write(buf[:n])
		p.put(w)
		return spawn.Status{}, true
	}
	return spawn.Status{Signaled: true}, true
}

// take removes and returns the most recently idle process for host.
func (p *Pool) take(host string) *worker {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.idle) - 1; i >= 0; i-- {
		w := p.idle[i]
		if !strings.EqualFold(w.host, host) {
			continue
		}
		p.idle = append(p.idle[:i], p.idle[i+1:]...)
		if w.alive() {
			return w
		}
		w.conn.Close()
	}
	return nil
}

// alive reports whether an idle process still holds its end of the
// socket: an idle one never writes, so anything readable (end of file) or
// a hang-up means it is gone.
func (w *worker) alive() bool {
	rc, err := w.conn.SyscallConn()
	if err != nil {
		return false
	}
	ok := false
	rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLRDHUP}}
		n, err := unix.Poll(fds, 0)
		ok = err == nil && n == 0
	})
	return ok
}

// put makes w idle, or closes it when keep mode went off.
func (p *Pool) put(w *worker) {
	t := p.cacheTime()
	if t <= 0 || p.held() {
		w.conn.Close()
		return
	}
	w.until = time.Now().Add(t)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.idle = append(p.idle, w)
	for len(p.idle) > MaxIdle {
		p.idle[0].conn.Close()
		p.idle = p.idle[1:]
	}
	if !p.reaping {
		p.reaping = true
		go p.reap()
	}
}

// held reports whether control/holdremote exists.
func (p *Pool) held() bool {
	_, err := os.Lstat(filepath.Join(p.Root, "control", "holdremote"))
	return err == nil
}

// reap closes idle processes whose time is up, all of them while remote
// delivery is held; it ends when none is idle.
func (p *Pool) reap() {
	for {
		time.Sleep(reapEvery)
		held := p.held()
		now := time.Now()
		p.mu.Lock()
		keep := p.idle[:0]
		for _, w := range p.idle {
			if held || now.After(w.until) {
				w.conn.Close()
			} else {
				keep = append(keep, w)
			}
		}
		clear(p.idle[len(keep):])
		p.idle = keep
		if len(p.idle) == 0 {
			p.reaping = false
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
	}
}

// Close closes every idle process.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, w := range p.idle {
		w.conn.Close()
	}
	p.idle = nil
}

// start runs "qmail-remote -k" with one end of a new socket pair on its
// fd 0, or returns nil.
func (p *Pool) start(host string) *worker {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	child := os.NewFile(uintptr(fds[1]), "qmail-remote socket")
	mine := os.NewFile(uintptr(fds[0]), "qmail-remote socket")
	cmd := exec.Command(p.Program, "-k")
	cmd.Args[0] = "qmail-remote"
	cmd.Env = p.Env
	cmd.Stdin = child
	err = cmd.Start()
	child.Close()
	if err != nil {
		mine.Close()
		return nil
	}
	go cmd.Wait()
	c, err := net.FileConn(mine)
	mine.Close()
	if err != nil {
		return nil // the process sees end of file and exits
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil
	}
	// The greeting: a program that does not know keep mode exits, prints
	// nothing here (its output goes to /dev/null) or waits for input that
	// never ends; it is killed, and keep mode is off for it.
	id := statID(p.Program)
	buf := make([]byte, 64)
	uc.SetReadDeadline(time.Now().Add(helloTimeout))
	n, err := uc.Read(buf)
	uc.SetReadDeadline(time.Time{})
	if err != nil || string(buf[:n]) != remote.KeepHello {
		uc.Close()
		cmd.Process.Kill()
		p.mu.Lock()
		if id != nil {
			p.refused = id
		}
		p.mu.Unlock()
		return nil
	}
	return &worker{conn: uc, host: host}
}
