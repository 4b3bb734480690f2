package install

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/hqmail/hqmail/pkg/qerr"
)

// allPrograms is a source directory holding every one of Programs (a
// small script each).
func allPrograms(t *testing.T) string {
	src := t.TempDir()
	for _, name := range Programs {
		if err := os.WriteFile(filepath.Join(src, name), []byte("#!/bin/sh\n# "+name+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return src
}

// failCopyOf makes the copy of bin/name fail as a full disk fails it:
// its temporary file is gone when it is to be renamed into place.
func failCopyOf(t *testing.T, root, name string) *bool {
	failed := new(bool)
	t.Cleanup(func() { testHook = nil })
	testHook = func(step, rel string) {
		if step != "rename" || rel != "bin/"+name {
			return
		}
		tmps, _ := filepath.Glob(filepath.Join(root, "bin", "."+name+".new*"))
		for _, p := range tmps {
			os.Remove(p)
		}
		*failed = len(tmps) > 0
	}
	return failed
}

// TestInstallFailingMidwayHasNoQueueEntry: an install that stops while
// it copies the programs (a full disk: the programs are about 80 MB)
// leaves a new tree with its control files, etc/ids and users/ made, and
// without qmail-queue or qmail-queued: nothing can queue mail there that
// would be addressed with the literal "defaultdomain" and sent away (QA:
// a 100 MB tmpfs left a set-uid qmail-queue and no control/). Over an
// installed tree the same failure leaves the old qmail-queue in place.
func TestInstallFailingMidwayHasNoQueueEntry(t *testing.T) {
	root := filepath.Join(searchableDir(t), "q")
	o := optsFrom(root, allPrograms(t))
	// sendmail comes after qmail-queue in Programs: a run copying in
	// that order would have installed qmail-queue by then.
	if i, j := slices.Index(Programs, "qmail-queue"), slices.Index(Programs, "sendmail"); i > j {
		t.Fatalf("Programs lists sendmail before qmail-queue: pick another program to fail")
	}
	failed := failCopyOf(t, root, "sendmail")
	err := Install(o)
	if !*failed {
		t.Fatalf("the copy of sendmail was never failed (install: %v)", err)
	}
	if err == nil || qerr.ExitCode(err) != 111 || !strings.Contains(err.Error(), "sendmail") {
		t.Fatalf("install with a failing copy: %v, want a temporary error naming sendmail", err)
	}
	for _, name := range queueEntries {
		if _, err := os.Lstat(filepath.Join(root, "bin", name)); err == nil {
			t.Errorf("bin/%s installed by a run that failed before the programs were all copied", name)
		}
	}
	for _, rel := range []string{"etc/ids", "control/me", "control/defaultdomain", "control/locals", "control/rcpthosts", "users/assign", "users/cdb"} {
		if _, err := os.Stat(filepath.Join(root, rel)); err != nil {
			t.Errorf("%s missing after a run that failed while copying the programs: %v", rel, err)
		}
	}

	// The run again, with room: complete, qmail-queue set-uid.
	testHook = nil
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	queue := filepath.Join(root, "bin", "qmail-queue")
	var old syscall.Stat_t
	if err := syscall.Stat(queue, &old); err != nil || old.Mode&0o7777 != 04711 {
		t.Fatalf("qmail-queue after a full run: mode %o, %v", old.Mode&0o7777, err)
	}

	// An upgrade that fails the same way keeps the old qmail-queue,
	// which was there at every step.
	failed = failCopyOf(t, root, "sendmail")
	inner := testHook
	missing := false
	testHook = func(step, rel string) {
		if _, err := os.Lstat(queue); err != nil {
			missing = true
		}
		inner(step, rel)
	}
	if err := Install(o); err == nil || !*failed {
		t.Fatalf("re-install with a failing copy: %v (failed %v)", err, *failed)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(queue, &st); err != nil || st.Ino != old.Ino || st.Mode&0o7777 != 04711 {
		t.Errorf("qmail-queue after a failed upgrade: inode %d (was %d), mode %o, %v", st.Ino, old.Ino, st.Mode&0o7777, err)
	}
	if missing {
		t.Errorf("bin/qmail-queue was missing during the upgrade")
	}
}

// TestProgramOrder: every program once, the queue's entries last,
// qmail-queue the very last.
func TestProgramOrder(t *testing.T) {
	order := programOrder()
	if len(order) != len(Programs) {
		t.Fatalf("%d programs in the order, %d in Programs", len(order), len(Programs))
	}
	for _, name := range Programs {
		if !slices.Contains(order, name) {
			t.Errorf("%s missing from the order", name)
		}
	}
	n := len(order)
	if order[n-2] != "qmail-queued" || order[n-1] != "qmail-queue" {
		t.Errorf("order ends with %v, want qmail-queued, qmail-queue", order[n-2:])
	}
}
