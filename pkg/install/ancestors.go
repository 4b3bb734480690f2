package install

import (
	"errors"

	"github.com/hqmail/hqmail/pkg/ancestors"
	"github.com/hqmail/hqmail/pkg/qerr"
)

// ancestorsTrusted refuses, before anything changes, a root below a
// directory that another user than the installing one (or root) can
// change (ancestors.Check): who can rename a directory above the
// tree can put one of their own in its place, and the programs (every
// one looks the tree up by its absolute name: qmail-lspawn runs
// ROOT/bin/qmail-local) would run theirs (QA rnewcomer: root's make run
// in a checkout an ordinary user owns ran the user's qmail-local as
// alias). Checked for every installer, as the root directory itself is
// (rootTrusted).
func ancestorsTrusted(root string) error {
	err := ancestors.Check(root)
	if err == nil {
		return nil
	}
	var ae *ancestors.Error
	if errors.As(err, &ae) {
		return qerr.Wrap(ErrRefused, true, err.Error()+"; refusing to install there; nothing was changed")
	}
	return qerr.Wrap(err, false, err.Error()+"; nothing was changed")
}
