// Package tcpto keeps qmail's table of remote hosts whose SMTP connections
// recently timed out (QMAILHOME/queue/lock/tcpto, spec/delivery.md §7), so
// that qmail-remote skips a dead host for a while instead of spending
// timeoutconnect on it for every message.
//
// The file is 64 records of 16 bytes: bytes 0-3 an IPv4 address, byte 4 the
// number of recent timeouts (0-10), bytes 8-11 the time of the last timeout
// (seconds since the epoch, uint32 little-endian), the rest zero. Every
// access holds an exclusive flock on the file. The table is advice: when the
// file cannot be opened or locked, every host counts as ready and nothing is
// recorded. IPv6 addresses have no place in the format and are never
// recorded or skipped.
//
// A record whose last timeout lies in the future (the clock was set back
// after it was written) counts as expired: its address is tried, the next
// timeout is recorded at once, and it is the first to be replaced. qmail
// computes the age unsigned, so such an age wraps to a huge one and the
// address is tried too; taken as a negative age it would be skipped until
// the clock caught up, for as long as it had been set back.
package tcpto

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/tcptofile"
)

// Path is the table's path relative to the qmail root.
const Path = tcptofile.Path

// Size of the file and of one record.
const (
	Records    = tcptofile.Records
	RecordSize = tcptofile.RecordSize
	Size       = tcptofile.Size
)

// Entry is one record of the table.
type Entry struct {
	IP    net.IP // IPv4
	Count int    // recent timeouts, 0-10
	Last  int64  // unix time of the last timeout
}

// Table is the tcpto file of one qmail tree.
type Table struct {
	Path string
	Now  func() time.Time // clock; time.Now when nil
	PID  int              // the pid in the back-off formula; os.Getpid() when 0
}

// Open returns the table of the tree at root.
func Open(root string) *Table { return &Table{Path: filepath.Join(root, Path)} }

func (t *Table) now() int64 {
	if t.Now != nil {
		return t.Now().Unix()
	}
	return time.Now().Unix()
}

func (t *Table) pid() int {
	if t.PID != 0 {
		return t.PID
	}
	return os.Getpid()
}

// locked opens the file, takes the lock and calls fn with the file and its
// 1024 bytes (missing bytes read as zero): read-write under the exclusive
// lock when write is true, else read-only under a shared one.
func (t *Table) locked(write bool, fn func(f *os.File, buf []byte) error) error {
	// qmail-tcpto runs as root on a file in qmailq's queue/lock: no link
	// there (or below queue/) is followed, and a hard link is not written
	// (a reader may read one, as every queue file).
	flag, how := os.O_RDONLY, unix.LOCK_SH
	if write {
		flag, how = os.O_RDWR, unix.LOCK_EX
	}
	f, err := qhome.OpenQueueFile(t.Path, flag)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), how); err != nil {
		return err
	}
	buf := make([]byte, Size)
	if _, err := f.ReadAt(buf, 0); err != nil && err != io.EOF {
		return err
	}
	return fn(f, buf)
}

func find(buf []byte, ip4 net.IP) int {
	for i := 0; i < Records; i++ {
		r := buf[i*RecordSize:]
		if r[0] == ip4[0] && r[1] == ip4[1] && r[2] == ip4[2] && r[3] == ip4[3] {
			return i
		}
	}
	return -1
}

func decode(r []byte) Entry {
	return Entry{
		IP:    net.IPv4(r[0], r[1], r[2], r[3]).To4(),
		Count: int(r[4]),
		Last:  int64(binary.LittleEndian.Uint32(r[8:12])),
	}
}

func encode(r []byte, e Entry) {
	clear(r[:RecordSize])
	copy(r[0:4], e.IP.To4())
	r[4] = byte(e.Count)
	binary.LittleEndian.PutUint32(r[8:12], uint32(e.Last))
}

// Ready reports whether a connection to ip may be tried now, and whether ip
// had a record at that moment (pass that to Result later).
func (t *Table) Ready(ip net.IP) (ready, present bool) {
	ip4 := ip.To4()
	if ip4 == nil {
		return true, false
	}
	ready = true
	_ = t.locked(false, func(_ *os.File, buf []byte) error {
		i := find(buf, ip4)
		if i < 0 {
			return nil
		}
		present = true
		e := decode(buf[i*RecordSize:])
		backoff := int64(60+(t.pid()&31)) * 64
		if age, ok := e.age(t.now()); ok && e.Count >= 2 && age < backoff {
			ready = false
		}
		return nil
	})
	return ready, present
}

// Result records the outcome of a connection attempt to ip: timedOut for a
// connect timeout, else success or another failure. present is what Ready
// said.
func (t *Table) Result(ip net.IP, timedOut, present bool) {
	ip4 := ip.To4()
	if ip4 == nil {
		return
	}
	if !timedOut && !present {
		return
	}
	_ = t.locked(true, func(f *os.File, buf []byte) error {
		now := t.now()
		i := find(buf, ip4)
		if !timedOut {
			if i < 0 {
				return nil
			}
			e := decode(buf[i*RecordSize:])
			if e.Count == 0 {
				return nil
			}
			e.Count = 0
			return writeRecord(f, buf, i, e)
		}
		if i >= 0 {
			e := decode(buf[i*RecordSize:])
			if age, ok := e.age(now); ok && e.Count > 0 && age < 120 {
				return nil
			}
			e.Count = min(e.Count+1, 10)
			e.Last = now
			return writeRecord(f, buf, i, e)
		}
		i = victim(buf, now)
		return writeRecord(f, buf, i, Entry{IP: ip4, Count: 1, Last: now})
	})
}

// age is how long ago e's last timeout was at time now; ok is false when
// it lies in the future (the clock went back), a record that counts as
// expired.
func (e Entry) age(now int64) (age int64, ok bool) {
	if e.Last > now {
		return 0, false
	}
	return now - e.Last, true
}

// victim picks the record a new address replaces: the first with count 0,
// else the one with the smallest last + count*1024, a last in the future
// counting as 0 (expired: replaced first, not kept for ever).
func victim(buf []byte, now int64) int {
	best, bestScore := 0, int64(-1)
	for i := 0; i < Records; i++ {
		e := decode(buf[i*RecordSize:])
		if e.Count == 0 {
			return i
		}
		last := e.Last
		if _, ok := e.age(now); !ok {
			last = 0
		}
		score := last + int64(e.Count)*1024
		if bestScore < 0 || score < bestScore {
			best, bestScore = i, score
		}
	}
	return best
}

func writeRecord(f *os.File, buf []byte, i int, e Entry) error {
	r := buf[i*RecordSize : (i+1)*RecordSize]
	encode(r, e)
	_, err := f.WriteAt(r, int64(i*RecordSize))
	return err
}

// Entries returns the records with at least one recent timeout, in file
// order, read under the lock.
func (t *Table) Entries() ([]Entry, error) {
	var out []Entry
	err := t.locked(false, func(_ *os.File, buf []byte) error {
		for i := 0; i < Records; i++ {
			if e := decode(buf[i*RecordSize:]); e.Count >= 1 {
				out = append(out, e)
			}
		}
		return nil
	})
	return out, err
}

// Clear zero-fills the table under the lock (qmail-tcpok). The file must
// exist: it is qmailr's, and creating it here would give it the wrong owner.
// Run as root (qmail-tcpok, qmailctl release remote) in queue/lock, which
// qmailq can write, it opens the file as a queue file: see
// tcptofile.Clear, which does it.
func (t *Table) Clear() error { return tcptofile.Clear(t.Path) }

// Format renders one qmail-tcpto line for e at time now. A last timeout
// in the future (the clock went back since) has no age to print.
func Format(e Entry, now int64) string {
	age, ok := e.age(now)
	if !ok {
		return fmt.Sprintf("%s timed out in the future (clock went back?); # recent timeouts: %d\n", e.IP, e.Count)
	}
	return fmt.Sprintf("%s timed out %d seconds ago; # recent timeouts: %d\n", e.IP, age, e.Count)
}

// Report writes qmail-tcpto's listing to w.
func (t *Table) Report(w io.Writer) error {
	es, err := t.Entries()
	if err != nil {
		return fmt.Errorf("unable to read %s: %w", Path, qerr.Bare(err))
	}
	now := t.now()
	for _, e := range es {
		if _, err := io.WriteString(w, Format(e, now)); err != nil {
			return fmt.Errorf("unable to write output: %w", err)
		}
	}
	return nil
}
