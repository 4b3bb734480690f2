package usertools

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hqmail/hqmail/pkg/forward"
	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qq"
)

const forwardUsage = "forward address [address ...]"

// fwdEnv is what a forward takes from qmail-local's environment.
type fwdEnv struct {
	sender string // $NEWSENDER: the envelope sender of the copy
	dtline string // $DTLINE: put on top, so a loop back here is caught
}

// forwardEnv reads $NEWSENDER and $DTLINE, or names the one missing.
func forwardEnv() (fwdEnv, string) {
	v, missing := need("NEWSENDER", "DTLINE")
	if missing != "" {
		return fwdEnv{}, missing
	}
	return fwdEnv{sender: v[0], dtline: v[1]}, ""
}

// forwardMessage queues one copy of msg, from its first byte, with
// env.dtline on top, for rcpts with env.sender as the envelope sender,
// through qmail-queue of the tree at root ($QMAILQUEUE if set, or the
// queue service), as qmail-local does for a forward line. It prints
// "TOOL: qp PID" on report (standard error), tool being forward or
// condredirect, as qmail's two do: qmail-local puts it into the delivery
// report, where the name tells it from qmail-local's own "qp PID" for a
// forward line.
func forwardMessage(root, tool string, msg forward.Message, env fwdEnv, rcpts []string, report io.Writer) error {
	if _, err := msg.Seek(0, io.SeekStart); err != nil {
		return qerr.Wrap(err, false, "unable to rewind the message: "+qerr.Str(err))
	}
	full := io.MultiReader(strings.NewReader(env.dtline), msg)
	pid, err := qq.Queue(qq.Options{Root: queueDir(root)}, full, &qq.Envelope{Sender: env.sender, Recipients: rcpts})
	if err != nil {
		var qe *qerr.Error
		if errors.As(err, &qe) {
			return &qerr.Error{Perm: qe.Perm, Text: "unable to forward the message: " + qe.Text, Err: err}
		}
		return qerr.Wrap(err, false, "unable to forward the message: "+errText(err))
	}
	fmt.Fprintf(report, "%s: qp %d\n", tool, pid)
	return nil
}

// queueDir is where qmail-queue starts (qq.StartDir).
func queueDir(root string) string {
	q, ok := os.LookupEnv("QMAILQUEUE")
	return qq.StartDir(root, q, ok)
}

// errText is qmail's text for err: the text of a qerr.Error, else the
// errno's short description, else Go's own words.
func errText(err error) string {
	var qe *qerr.Error
	if errors.As(err, &qe) && qe.Text != "" {
		return qe.Text
	}
	if s := qerr.Str(err); s != "unknown error" {
		return s
	}
	return err.Error()
}

// ForwardMain is forward(1): forward the message to every address given,
// in one qmail-queue run, with sender $NEWSENDER and $DTLINE on top, and
// exit 0 (qmail-local goes on with the next line). A queue failure gives
// 111 or 100 as qmail-queue's answer is temporary or permanent.
func ForwardMain(root string, args []string, stdin *os.File, stdout, stderr io.Writer) int {
	const tool = "forward"
	if len(args) == 0 {
		return usageError(stderr, forwardUsage)
	}
	for _, a := range args {
		if a == "" {
			return usageError(stderr, forwardUsage)
		}
	}
	env, missing := forwardEnv()
	if missing != "" {
		return missingVar(stderr, tool, missing)
	}
	msg, err := forward.Seekable(stdin)
	if err != nil {
		return fail(stderr, tool, exitTemp, "%s", errText(err))
	}
	if err := forwardMessage(root, tool, msg, env, args, stderr); err != nil {
		return fail(stderr, tool, qerr.ExitCode(err), "%s", errText(err))
	}
	return exitNext
}
