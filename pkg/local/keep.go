package local

import (
	"io"
	"os"

	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/spawn/keep"
)

// KeepHello is the first packet of qmail-local -k.
const KeepHello = "qmail-local -k 1\x00"

// MaxKeepOutput bounds the report kept of one delivery in keep mode (what
// qmail-lspawn keeps of a one-shot run is less: qmail's 3000 bytes).
const MaxKeepOutput = 64 << 10

// MaxKeepRequest is the longest request packet qmail-local -k reads (its
// arguments, each NUL-ended). qmail-lspawn hands a kept qmail-local no
// longer one: such a delivery (a control/defaultdelivery of up to 128 KB)
// is made one-shot.
const MaxKeepRequest = 64 << 10

// cutText is the answer to a request cut short (longer than
// MaxKeepRequest): a temporary failure, never the usage line's bounce, as
// the delivery itself was never looked at.
const cutText = "Request to a kept qmail-local cut short (longer than 65536 bytes). (#4.3.0)\n"

// Serve is qmail-local -k (qmail-local(8), KEEP MODE): started by
// qmail-lspawn as the recipient's user with a SOCK_SEQPACKET socket on
// sock (fd 0), it makes one delivery per request packet, whose NUL-ended
// fields are the arguments of a one-shot run and which carries the
// message's descriptor, and answers each with one packet: the exit status
// as one byte, then what a one-shot run writes on fds 1 and 2. Every
// delivery is a full Run (its own environment, working directory, umask),
// so a delivery sees nothing of the one before. base is the process's
// Config; Stdin, Stdout and Stderr are replaced per delivery. A request
// cut short (longer than MaxKeepRequest) is answered 111 with cutText; one
// without a descriptor, 100 with the usage line.
func Serve(sock int, base Config) int {
	keep.Serve(sock, KeepHello, MaxKeepRequest, func(r *keep.Request) []byte {
		if r.Cut {
			return append([]byte{qerr.ExitTemp}, cutText...)
		}
		if r.File == nil {
			return append([]byte{qerr.ExitPerm}, usageText+"\n"...)
		}
		pr, pw, err := os.Pipe()
		if err != nil {
			return append([]byte{qerr.ExitTemp}, "Unable to create a pipe. (#4.3.0)\n"...)
		}
		done := make(chan []byte)
		go func() { done <- readBounded(pr, MaxKeepOutput); pr.Close() }()
		cfg := base
		cfg.Stdin, cfg.Stdout, cfg.Stderr = r.File, pw, pw
		code := Run(append([]string{"qmail-local"}, r.Args...), cfg)
		pw.Close()
		out := <-done
		return append([]byte{byte(code)}, out...)
	})
	return 0
}

// readBounded reads r to end of file, keeping at most max bytes.
func readBounded(r io.Reader, max int) []byte {
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		if keep := min(n, max-len(out)); keep > 0 {
			out = append(out, buf[:keep]...)
		}
		if err != nil {
			return out
		}
	}
}
