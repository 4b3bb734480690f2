// Package cdb reads and writes constant databases in D. J. Bernstein's cdb
// format, as qmail uses for users/cdb and control/morercpthosts.cdb.
//
// Layout: a 2048-byte header of 256 (position, length) pairs of
// little-endian uint32s, one per hash table; then the records
// (klen, dlen, key, data); then the 256 hash tables of (hash, position)
// slots. hash: h = 5381; h = (h*33) ^ byte. A key lives in table h&255,
// starting at slot (h>>8) % len, probing linearly; a slot with position 0
// ends the search.
package cdb

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"

	"github.com/hqmail/hqmail/pkg/qhome"
)

// Hash is cdb's hash function.
func Hash(key []byte) uint32 {
	h := uint32(5381)
	for _, c := range key {
		h = ((h << 5) + h) ^ uint32(c)
	}
	return h
}

// ErrFormat reports a damaged database.
var ErrFormat = errors.New("cdb: bad format")

// Reader looks keys up in a database.
type Reader struct {
	r    io.ReaderAt
	size int64
	hdr  [2048]byte
}

// NewReader reads the header of a database of the given size.
func NewReader(r io.ReaderAt, size int64) (*Reader, error) {
	c := &Reader{r: r, size: size}
	if _, err := r.ReadAt(c.hdr[:], 0); err != nil {
		if err == io.EOF {
			return nil, ErrFormat
		}
		return nil, err
	}
	return c, nil
}

// File is an open database file.
type File struct {
	*Reader
	f *os.File
}

// Open opens a database file.
func Open(path string) (*File, error) {
	f, err := qhome.OpenRegular(path, os.O_RDONLY) // a FIFO in its place must not block
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	r, err := NewReader(f, st.Size())
	if err != nil {
		f.Close()
		return nil, err
	}
	return &File{Reader: r, f: f}, nil
}

// Close closes the file.
func (f *File) Close() error { return f.f.Close() }

func (c *Reader) u32(off int64) (uint32, error) {
	var b [4]byte
	if off < 0 || off+4 > c.size {
		return 0, ErrFormat
	}
	if _, err := c.r.ReadAt(b[:], off); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b[:]), nil
}

// Get returns the data of the first record with the given key. found is
// false when there is none.
func (c *Reader) Get(key []byte) (data []byte, found bool, err error) {
	h := Hash(key)
	t := (h & 255) * 8
	pos := binary.LittleEndian.Uint32(c.hdr[t:])
	n := binary.LittleEndian.Uint32(c.hdr[t+4:])
	if n == 0 {
		return nil, false, nil
	}
	slot := (h >> 8) % n
	for i := uint32(0); i < n; i++ {
		off := int64(pos) + int64(slot)*8
		sh, err := c.u32(off)
		if err != nil {
			return nil, false, err
		}
		rp, err := c.u32(off + 4)
		if err != nil {
			return nil, false, err
		}
		if rp == 0 {
			return nil, false, nil
		}
		if sh == h {
			kl, err := c.u32(int64(rp))
			if err != nil {
				return nil, false, err
			}
			dl, err := c.u32(int64(rp) + 4)
			if err != nil {
				return nil, false, err
			}
			if int(kl) == len(key) {
				start := int64(rp) + 8
				if start+int64(kl)+int64(dl) > c.size {
					return nil, false, ErrFormat
				}
				k := make([]byte, kl)
				if _, err := c.r.ReadAt(k, start); err != nil {
					return nil, false, err
				}
				if string(k) == string(key) {
					d := make([]byte, dl)
					if _, err := c.r.ReadAt(d, start+int64(kl)); err != nil {
						return nil, false, err
					}
					return d, true, nil
				}
			}
		}
		slot++
		if slot == n {
			slot = 0
		}
	}
	return nil, false, nil
}

// Writer builds a database. Records are written in the order added.
type Writer struct {
	w     *bufio.Writer
	pos   uint32
	slots [256][]slot
	err   error
}

type slot struct{ hash, pos uint32 }

// NewWriter starts a database on w; w must be at offset 0.
func NewWriter(w io.Writer) *Writer {
	bw := bufio.NewWriterSize(w, 64<<10)
	var zero [2048]byte
	_, err := bw.Write(zero[:])
	return &Writer{w: bw, pos: 2048, err: err}
}

func (w *Writer) advance(n uint64) {
	if w.err == nil && uint64(w.pos)+n > 0xffffffff {
		w.err = errors.New("cdb: database too large")
	}
	w.pos += uint32(n)
}

// Add appends a record.
func (w *Writer) Add(key, data []byte) error {
	if w.err != nil {
		return w.err
	}
	h := Hash(key)
	w.slots[h&255] = append(w.slots[h&255], slot{h, w.pos})
	var b [8]byte
	binary.LittleEndian.PutUint32(b[:4], uint32(len(key)))
	binary.LittleEndian.PutUint32(b[4:], uint32(len(data)))
	w.bw(b[:])
	w.bw(key)
	w.bw(data)
	w.advance(8 + uint64(len(key)) + uint64(len(data)))
	return w.err
}

func (w *Writer) bw(p []byte) {
	if w.err == nil {
		_, w.err = w.w.Write(p)
	}
}

// Finish writes the hash tables and returns the header, which the caller
// must write at offset 0 (WriteFile does this).
func (w *Writer) Finish() ([2048]byte, error) {
	var hdr [2048]byte
	for i := range w.slots {
		n := uint32(len(w.slots[i]) * 2)
		binary.LittleEndian.PutUint32(hdr[i*8:], w.pos)
		binary.LittleEndian.PutUint32(hdr[i*8+4:], n)
		table := make([]slot, n)
		for _, s := range w.slots[i] {
			j := (s.hash >> 8) % n
			for table[j].pos != 0 {
				j++
				if j == n {
					j = 0
				}
			}
			table[j] = s
		}
		for _, s := range table {
			var b [8]byte
			binary.LittleEndian.PutUint32(b[:4], s.hash)
			binary.LittleEndian.PutUint32(b[4:], s.pos)
			w.bw(b[:])
		}
		w.advance(uint64(n) * 8)
	}
	if w.err == nil {
		w.err = w.w.Flush()
	}
	return hdr, w.err
}

// Record is a key and its data.
type Record struct{ Key, Data []byte }

// WriteFile writes records to path atomically: it writes a new temporary
// file beside it (path.tmp.RANDOM, mode perm), fsyncs it and renames it
// over path. Each writer has its own temporary file, so two at once (two
// newaliases runs) each install a whole database, the last one winning;
// with one shared name the second would write into the file the first
// had just made live.
func WriteFile(path string, perm os.FileMode, records []Record) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp.")
	if err != nil {
		return err
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return err
	}
	w := NewWriter(f)
	for _, r := range records {
		if err := w.Add(r.Key, r.Data); err != nil {
			return fail(err)
		}
	}
	hdr, err := w.Finish()
	if err != nil {
		return fail(err)
	}
	if _, err := f.WriteAt(hdr[:], 0); err != nil {
		return fail(err)
	}
	if err := f.Chmod(perm); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}
