package cdb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// countingReader counts the reads a lookup makes; past max it fails
// them, so that a lookup that would never end does.
type countingReader struct {
	r          *bytes.Reader
	reads, max int
}

var errTooMany = errors.New("too many reads")

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	c.reads++
	if c.max > 0 && c.reads > c.max {
		return 0, errTooMany
	}
	return c.r.ReadAt(p, off)
}

// build writes recs with Writer into memory, the header put at offset 0
// as WriteFile does.
func build(recs []Record) ([]byte, error) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, r := range recs {
		if err := w.Add(r.Key, r.Data); err != nil {
			return nil, err
		}
	}
	hdr, err := w.Finish()
	if err != nil {
		return nil, err
	}
	b := buf.Bytes()
	copy(b, hdr[:])
	return b, nil
}

func mustBuild(recs []Record) []byte {
	b, err := build(recs)
	if err != nil {
		panic(err)
	}
	return b
}

// FuzzReader: any bytes read as a database never panic, and a lookup
// ends after a bounded number of reads: it probes at most the slots that
// fit in the file (each costing at most six reads), since a slot past the
// end is a format error. Data it returns lies in the file.
//
// An input shorter than a header is also read in a compact form: its
// first 8 bytes as the (position, slots) pair of all 256 tables, the rest
// after the header; so that small inputs reach the slot and record code.
func FuzzReader(f *testing.F) {
	f.Add(mustBuild([]Record{{[]byte("a"), []byte("1")}, {[]byte("b"), []byte("2")}}), []byte("a"))
	f.Add(mustBuild([]Record{{[]byte{}, []byte("wild")}, {[]byte("!x\x00"), []byte("u\x001")}}), []byte{})
	f.Add(make([]byte, 2048), []byte("k"))
	f.Add([]byte("short"), []byte("k"))
	// Every table claims 2^32-1 slots at position 2040.
	f.Add(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, 2040), 0xffffffff), []byte("k"))
	// Every table one slot, taken by a record of another hash: a lookup
	// must stop after probing it.
	full := binary.LittleEndian.AppendUint32(nil, 2048)
	full = binary.LittleEndian.AppendUint32(full, 1)
	full = binary.LittleEndian.AppendUint32(full, 0xdeadbeef)
	full = binary.LittleEndian.AppendUint32(full, 1)
	f.Add(full, []byte("k"))
	// Two slots at 2048, the second (where "a", hash 0x2b5c4, starts)
	// naming the record at 2064: "a" -> "xyz".
	one := binary.LittleEndian.AppendUint32(nil, 2048)
	one = binary.LittleEndian.AppendUint32(one, 2)
	one = append(one, make([]byte, 8)...)
	one = binary.LittleEndian.AppendUint32(one, Hash([]byte("a")))
	one = binary.LittleEndian.AppendUint32(one, 2064)
	one = binary.LittleEndian.AppendUint32(one, 1)
	one = binary.LittleEndian.AppendUint32(one, 3)
	one = append(one, "axyz"...)
	f.Add(one, []byte("a"))
	f.Fuzz(func(t *testing.T, file, key []byte) {
		checkFile(t, file, key)
		if len(file) >= 8 && len(file) < 2048 {
			compact := bytes.Repeat(file[:8], 256)
			checkFile(t, append(compact, file[8:]...), key)
		}
	})
}

func checkFile(t *testing.T, file, key []byte) {
	cr := &countingReader{r: bytes.NewReader(file)}
	db, err := NewReader(cr, int64(len(file)))
	if err != nil {
		if len(file) >= 2048 {
			t.Fatalf("NewReader of %d bytes: %v", len(file), err)
		}
		return
	}
	if len(file) < 2048 {
		t.Fatalf("NewReader took a file of %d bytes", len(file))
	}
	keys := [][]byte{key, nil, []byte("a")}
	if len(file) > 2056 {
		// The key of the first record, as a writer puts it.
		kl := binary.LittleEndian.Uint32(file[2048:])
		if int64(kl) <= int64(len(file)-2056) {
			keys = append(keys, file[2056:2056+kl])
		}
	}
	limit := 2 + 6*(len(file)/8+1)
	cr.max = limit + 1
	for _, k := range keys {
		cr.reads = 0
		d, found, err := db.Get(k)
		if cr.reads > limit {
			t.Fatalf("Get(%q) made %d reads in a file of %d bytes (limit %d)", k, cr.reads, len(file), limit)
		}
		if err == nil && found && !bytes.Contains(file, d) {
			t.Fatalf("Get(%q) returned %q, not in the file", k, d)
		}
		if err != nil && found {
			t.Fatalf("Get(%q): found with error %v", k, err)
		}
	}
}

// records decodes fuzz bytes into records: a length byte and that many
// key bytes, then a length byte and data. Keys are drawn from a small
// alphabet (the low two bits of each byte), so that duplicates and hash
// collisions are common.
func records(b []byte) []Record {
	var out []Record
	take := func() []byte {
		if len(b) == 0 {
			return nil
		}
		n := int(b[0]) % 8
		b = b[1:]
		n = min(n, len(b))
		p := b[:n]
		b = b[n:]
		return p
	}
	for len(b) > 0 {
		k := append([]byte{}, take()...)
		for i := range k {
			k[i] = 'a' + k[i]&3
		}
		out = append(out, Record{k, append([]byte{}, take()...)})
	}
	return out
}

// FuzzRoundTrip: a database written by Writer gives, for each key, the
// data of the first record added with it (the package's "first record"
// rule, which qmail-newu's "first line wins" relies on), and no other key
// is found.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte{1, 0, 1, 'x', 1, 0, 1, 'y'}, []byte("b"))
	f.Add([]byte{0, 0, 3, 1, 2, 3, 1, 1, 0}, []byte(""))
	f.Add([]byte{7, 1, 2, 3, 0, 1, 2, 3, 4, 'd', 'a', 't', 'a'}, []byte("bcdabcd"))
	f.Fuzz(func(t *testing.T, in, probe []byte) {
		recs := records(in)
		file, err := build(recs)
		if err != nil {
			t.Fatal(err)
		}
		db, err := NewReader(bytes.NewReader(file), int64(len(file)))
		if err != nil {
			t.Fatal(err)
		}
		first := map[string][]byte{}
		for _, r := range recs {
			if _, ok := first[string(r.Key)]; !ok {
				first[string(r.Key)] = r.Data
			}
		}
		for k, want := range first {
			d, found, err := db.Get([]byte(k))
			if err != nil || !found || !bytes.Equal(d, want) {
				t.Fatalf("Get(%q) = %q, %v, %v; want %q (records %q)", k, d, found, err, want, recs)
			}
		}
		if _, ok := first[string(probe)]; !ok {
			if d, found, err := db.Get(probe); found || err != nil {
				t.Fatalf("Get(%q) of a key never added = %q, %v, %v", probe, d, found, err)
			}
		}
	})
}
