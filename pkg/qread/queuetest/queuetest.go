// Package queuetest builds qmail queues in temporary directories for tests
// of the tools that read them. It writes the files the way qmail-queue and
// qmail-send leave them (spec/queue.md §3), without running either.
package queuetest

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/hqmail/hqmail/pkg/qhome"
)

// Dirs are the queue subdirectories; the first four are split.
var Dirs = []string{"mess", "info", "local", "remote", "todo", "intd", "pid", "bounce", "lock"}

// MakeQueue creates ROOT/queue with every directory and returns its path.
func MakeQueue(t testing.TB, root string) string {
	t.Helper()
	q := filepath.Join(root, "queue")
	for i, d := range Dirs {
		if i < 4 {
			for s := 0; s < qhome.Split; s++ {
				mkdir(t, filepath.Join(q, d, strconv.Itoa(s)))
			}
		} else {
			mkdir(t, filepath.Join(q, d))
		}
	}
	return q
}

func mkdir(t testing.TB, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0755); err != nil {
		t.Fatal(err)
	}
}

// Rcpt is a recipient record; Done marks it 'D'.
type Rcpt struct {
	Addr string
	Done bool
}

// Msg describes a preprocessed message.
type Msg struct {
	ID       uint64
	Birth    time.Time
	Body     string // mess contents (its size is what qmail-qread prints)
	Sender   string
	Local    []Rcpt
	Remote   []Rcpt
	Bouncing bool
	NoMess   bool // leave mess/S/ID out
}

// Channel encodes recipient records.
func Channel(rs []Rcpt) []byte {
	var b []byte
	for _, r := range rs {
		c := byte('T')
		if r.Done {
			c = 'D'
		}
		b = append(b, c)
		b = append(b, r.Addr...)
		b = append(b, 0)
	}
	return b
}

// Add writes m into queue q.
func Add(t testing.TB, q string, m Msg) {
	t.Helper()
	name := strconv.FormatUint(m.ID, 10)
	sub := strconv.FormatUint(m.ID%qhome.Split, 10)
	if !m.NoMess {
		write(t, filepath.Join(q, "mess", sub, name), []byte(m.Body))
	}
	info := filepath.Join(q, "info", sub, name)
	write(t, info, []byte("F"+m.Sender+"\x00"))
	if err := os.Chtimes(info, m.Birth, m.Birth); err != nil {
		t.Fatal(err)
	}
	if m.Local != nil {
		write(t, filepath.Join(q, "local", sub, name), Channel(m.Local))
	}
	if m.Remote != nil {
		write(t, filepath.Join(q, "remote", sub, name), Channel(m.Remote))
	}
	if m.Bouncing {
		write(t, filepath.Join(q, "bounce", name), []byte("bounce text\n"))
	}
}

// AddTodo writes a message that qmail-queue finished but qmail-send has not
// preprocessed: mess/S/ID and todo/ID.
func AddTodo(t testing.TB, q string, id uint64, body, sender string, rcpts ...string) {
	t.Helper()
	name := strconv.FormatUint(id, 10)
	write(t, filepath.Join(q, "mess", strconv.FormatUint(id%qhome.Split, 10), name), []byte(body))
	env := "u0\x00p1\x00F" + sender + "\x00"
	for _, r := range rcpts {
		env += "T" + r + "\x00"
	}
	write(t, filepath.Join(q, "todo", name), []byte(env))
}

// WriteFile writes a file, failing the test on error.
func WriteFile(t testing.TB, path string, data []byte) { t.Helper(); write(t, path, data) }

// write makes path appear whole (written beside the queue, then renamed),
// as qmail's programs make queue files appear, so that a reader racing a
// test that rewrites files never sees a half-written one.
func write(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp, err := os.CreateTemp(filepath.Dir(filepath.Dir(filepath.Dir(path))), ".queuetest-*")
	if err != nil {
		t.Fatal(err)
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if werr != nil || cerr != nil {
		os.Remove(tmp.Name())
		t.Fatal(werr, cerr)
	}
	os.Chmod(tmp.Name(), 0644)
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		t.Fatal(err)
	}
}
