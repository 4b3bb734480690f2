package sendmail

import (
	"io"
	"io/fs"
	"os"
)

// input is standard input as Main found it, for what a failure leaves
// of it (giveBack).
type input struct {
	f *os.File
	// seekable: a regular file, read from offset.
	seekable bool
	offset   int64
	// stream: a pipe or a socket, whose writer waits for it to be read.
	stream bool
	// message: Main was to read a message from it (not -bs, -bp, -bi or
	// -q, whose input is another program's or none).
	message bool
}

// noteInput records what standard input is, and where a regular file
// is to be read from.
func noteInput(stdin io.Reader) *input {
	in := &input{}
	f, ok := stdin.(*os.File)
	if !ok || f == nil {
		return in
	}
	st, err := f.Stat()
	if err != nil {
		return in
	}
	in.f = f
	switch m := st.Mode(); {
	case m.IsRegular():
		if off, err := f.Seek(0, io.SeekCurrent); err == nil {
			in.seekable, in.offset = true, off
		}
	case m&(fs.ModeNamedPipe|fs.ModeSocket) != 0:
		in.stream = true
	}
	return in
}

// giveBack leaves standard input, after a failure, as a caller that
// keeps the message expects it. A regular file goes back to the offset
// reading started at: bsd-mailx hands over its temporary file as
// descriptor 0, sharing the offset, and copies dead.letter from wherever
// that offset is when sendmail fails (it was empty, or a tail, from where
// reading had stopped). A pipe or socket carrying a message is read to
// its end and the rest thrown away, as sendmail 8 and Postfix read the
// whole message first: a writer still writing (Perl's print to
// "|sendmail -t", a message longer than the pipe buffer) was killed by
// SIGPIPE and never saw the exit code. A terminal is left alone.
func (in *input) giveBack() {
	switch {
	case in.seekable:
		in.f.Seek(in.offset, io.SeekStart) // nothing to do if it fails
	case in.stream && in.message:
		io.Copy(io.Discard, in.f) // to the end, or until a read fails
	}
}
