package local

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/dotqmail"
	"github.com/hqmail/hqmail/pkg/maildir"
	"github.com/hqmail/hqmail/pkg/mbox"
	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qq"
)

// openFailure reports whether a failed open of a .qmail file must defer
// the delivery rather than count as "no such file": a passing condition,
// or a file that is there but may not be read.
func openFailure(err error) bool {
	return qerr.TempErrno(err) || errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES)
}

// open tries one .qmail candidate. It returns the open file when it is a
// regular file, nil when there is no usable file by that name.
func (d *delivery) open(name string) (*os.File, *exit) {
	// Non-blocking, so that a FIFO by that name cannot hang the delivery;
	// O_NOCTTY, so that qmail-local, a session leader (qmail-lspawn starts
	// it with setsid), never takes a terminal by that name as its
	// controlling terminal.
	fd, err := unix.Open(name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		if openFailure(err) {
			return nil, temp("Unable to open %s: %s. (#4.3.0)", name, qerr.Str(err))
		}
		return nil, nil
	}
	f := os.NewFile(uintptr(fd), name)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, temp("Unable to open %s: %s. (#4.3.0)", name, qerr.Str(err))
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		f.Close()
		return nil, nil
	}
	if st.Mode&0o002 != 0 {
		f.Close()
		return nil, temp("Uh-oh: .qmail file is writable. (#4.7.0)")
	}
	d.forwardOnly = st.Mode&0o100 != 0
	return f, nil
}

// search finds the .qmail file for the address and sets $DEFAULT when a
// default file (or an exact name ending in "default") matched. It returns
// nil when there is none.
func (d *delivery) search() (*os.File, *exit) {
	for _, c := range dotqmail.Candidates(d.dash, d.ext) {
		f, err := d.open(c.Name)
		if err != nil {
			return nil, err
		}
		if f != nil {
			if c.HasDefault {
				d.env.put("DEFAULT", c.Default)
			}
			return f, nil
		}
	}
	return nil, nil
}

// exists reports whether name exists (any type; symlinks followed).
func (d *delivery) exists(name string) (bool, *exit) {
	if _, err := os.Stat(name); err != nil {
		if qerr.TempErrno(err) {
			return false, temp("Unable to open %s: %s. (#4.3.0)", name, qerr.Str(err))
		}
		return false, nil
	}
	return true, nil
}

// instructions runs the lines of the .qmail file (or defaultdelivery).
func (d *delivery) instructions(cmds []byte) *exit {
	for _, l := range dotqmail.Parse(cmds) {
		switch l.Kind {
		case dotqmail.Blank:
			if l.Offset == 0 {
				return temp("Uh-oh: first line of .qmail file is blank. (#4.2.1)")
			}
		case dotqmail.Comment:
		case dotqmail.Maildir, dotqmail.Mbox:
			d.files++
			if d.forwardOnly {
				return temp("Uh-oh: .qmail has file delivery but has x bit set. (#4.7.0)")
			}
			if !d.doit {
				d.say(l)
				break
			}
			if err := d.file(l); err != nil {
				return err
			}
		case dotqmail.Program:
			d.programs++
			if d.forwardOnly {
				return temp("Uh-oh: .qmail has prog delivery but has x bit set. (#4.7.0)")
			}
			if !d.doit {
				d.say(l)
				break
			}
			if err := d.program(l.Target()); err != nil {
				return err
			}
		case dotqmail.Plus:
			if l.IsList() {
				d.forwardOnly = true
			}
		case dotqmail.Forward:
			d.nforward++
			if !d.doit {
				d.say(l)
				break
			}
			d.forwards = append(d.forwards, l.Target())
		}
		if d.stop {
			break
		}
	}
	return nil
}

// say prints what a dry run would do with line l.
func (d *delivery) say(l dotqmail.Line) {
	b := append([]byte(l.Kind.String()+" "), l.Arg()...)
	d.cfg.Stdout.Write(append(b, '\n'))
}

// file delivers to a Maildir or an mbox.
func (d *delivery) file(l dotqmail.Line) *exit {
	if err := d.rewind(); err != nil {
		return err
	}
	var err error
	if l.Kind == dotqmail.Maildir {
		head := append(append([]byte(nil), d.rpline...), d.dtline...)
		err = maildir.Deliver(l.Target(), head, d.cfg.Stdin)
	} else {
		head := append(append(append([]byte(nil), d.ufline...), d.rpline...), d.dtline...)
		err = mbox.Deliver(l.Target(), head, d.cfg.Stdin)
	}
	if err != nil {
		return &exit{qerr.ExitTemp, err.Error()}
	}
	return nil
}

// program runs one |command line under /bin/sh with the message on fd 0.
func (d *delivery) program(command string) *exit {
	if err := d.rewind(); err != nil {
		return err
	}
	cmd := &exec.Cmd{
		Path:   "/bin/sh",
		Args:   []string{"/bin/sh", "-c", command},
		Env:    d.env,
		Stdin:  d.cfg.Stdin,
		Stdout: d.cfg.Stdout,
		Stderr: d.cfg.Stderr,
	}
	if err := cmd.Start(); err != nil {
		if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.ENOMEM) {
			return temp("Unable to fork: %s. (#4.3.0)", qerr.Str(err))
		}
		return temp("Unable to run /bin/sh: %s. (#4.3.0)", qerr.Str(err))
	}
	cmd.Wait() // the status is in ProcessState; copy errors cannot occur (all *os.File)
	if cmd.ProcessState == nil {
		return temp("Aack, child crashed. (#4.3.0)")
	}
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Exited() {
		return temp("Aack, child crashed. (#4.3.0)")
	}
	switch code := ws.ExitStatus(); code {
	case 0:
	case 99:
		d.stop = true
	case 100, 64, 65, 70, 76, 77, 78, 112:
		return &exit{code: qerr.ExitPerm}
	default:
		return &exit{code: qerr.ExitTemp}
	}
	return nil
}

// forward queues one copy of the message, with our Delivered-To line on
// top, to every forward address, with NEWSENDER as the envelope sender.
func (d *delivery) forward() *exit {
	if err := d.rewind(); err != nil {
		return err
	}
	msg := io.MultiReader(bytesReader(d.dtline), d.cfg.Stdin)
	pid, err := qq.Queue(qq.Options{Root: d.queueDir(), Env: d.env}, msg,
		&qq.Envelope{Sender: d.owner, Recipients: d.forwards})
	if err != nil {
		code := qerr.ExitTemp
		if qerr.IsPerm(err) {
			code = qerr.ExitPerm
		}
		return die(code, "Unable to forward message: %s.", err.Error())
	}
	d.qp = pid
	return nil
}

// queueDir is where qmail-queue starts (qq.StartDir).
func (d *delivery) queueDir() string {
	q, ok := d.env.get("QMAILQUEUE")
	return qq.StartDir(d.cfg.Root, q, ok)
}
