package spawn

import (
	"bufio"
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/pkg/spawnproto"
)

// FuzzRequest feeds raw bytes from "qmail-send" through the request
// parser and Check: an accepted request names a file strictly inside the
// message directory and has a recipient with '@'.
func FuzzRequest(f *testing.F) {
	f.Add([]byte("\x053/123\x00s@x\x00joe@example.org\x00"))
	f.Add([]byte("\x78../etc/passwd\x00\x00a@b\x00"))
	f.Add([]byte("\x00/1\x00\x00a@b\x00\x011\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, in []byte) { fuzzRequest(t, in, spawnproto.Narrow, 120) })
}

// FuzzWideRequest: the same with two-byte slots and qmail-rspawn's limit
// (slots 500..65535 must be refused).
func FuzzWideRequest(f *testing.F) {
	f.Add([]byte("\x01\xf33/123\x00s@x\x00joe@example.org\x00"))
	f.Add([]byte("\x01\xf4../etc/passwd\x00\x00a@b\x00"))
	f.Add([]byte("\xff\xff1/1\x00\x00a@b\x00\x00\x031\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, in []byte) { fuzzRequest(t, in, spawnproto.Wide, RemoteLimit) })
}

func fuzzRequest(t *testing.T, in []byte, width, limit int) {
	br := bufio.NewReader(bytes.NewReader(in))
	for i := 0; i < 100; i++ {
		req, err := spawnproto.ReadRequestWidth(br, width)
		if err != nil {
			return
		}
		reject, at := Check(req, limit, func(s int) bool { return s == 3 })
		if reject != "" {
			if reject[0] != 'Z' && reject[0] != 'D' || !strings.HasSuffix(reject, "\n") {
				t.Fatalf("bad reject text %q", reject)
			}
			continue
		}
		if req.Slot >= limit || req.Slot == 3 {
			t.Fatalf("slot %d accepted", req.Slot)
		}
		if at < 0 || at >= len(req.Recipient) || req.Recipient[at] != '@' || strings.Contains(req.Recipient[at+1:], "@") {
			t.Fatalf("at %d in %q", at, req.Recipient)
		}
		p := filepath.Join("/q/mess", req.Mess)
		if !strings.HasPrefix(p, "/q/mess/") || req.Mess == "" || len(req.Mess) >= 100 {
			t.Fatalf("mess %q escapes: %q", req.Mess, p)
		}
	}
}
