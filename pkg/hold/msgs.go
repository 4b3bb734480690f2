package hold

import (
	"bytes"
	"errors"
	"io/fs"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/hqmail/hqmail/pkg/qhome"
)

// Messages held by id (qmailctl hold ID) are listed in queue/bounce/MsgsName,
// one id per line, written by qmail-send (and by qmailctl while qmail-send
// is not running); qmail-send starts no delivery for them, qmailctl queue
// and qmail-qread mark them.
const (
	MsgsName = "heldmsgs"
	MaxMsgs  = 1 << 20 // ids kept at most
)

// ReadMsgs reads the held-message file of the queue directory q (ROOT/queue);
// a missing file is an empty set. Lines that are not message ids are
// ignored. The file is in queue/bounce, which qmails owns, and is read
// as a queue file (qhome.ReadQueueFile): a symbolic link there is an
// error, never followed (qmailctl reads it as root).
func ReadMsgs(q string) (map[uint64]bool, error) {
	held := map[uint64]bool{}
	b, err := qhome.ReadQueueFile(filepath.Join(q, "bounce", MsgsName))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return held, nil
		}
		return held, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.Trim(l, "0123456789") != "" {
			continue
		}
		if id, err := strconv.ParseUint(l, 10, 64); err == nil && id != 0 && len(held) < MaxMsgs {
			held[id] = true
		}
	}
	return held, nil
}

// MsgsText renders the held-message file: a comment, then the ids sorted.
func MsgsText(held map[uint64]bool) []byte {
	ids := make([]uint64, 0, len(held))
	for id := range held {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	var b bytes.Buffer
	b.WriteString("# messages held by qmailctl; qmail-send starts no delivery for them\n")
	for _, id := range ids {
		b.WriteString(strconv.FormatUint(id, 10))
		b.WriteByte('\n')
	}
	return b.Bytes()
}
