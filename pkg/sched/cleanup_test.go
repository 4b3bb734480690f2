package sched

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hqmail/hqmail/pkg/clean"
)

// TestCleanupSkipsEndingMessage: the walk for stale messages (cleanupStep)
// runs while a remover is between its unlink of info/S/ID and its own
// foop/ID. The message then looks stale (an old mess file with neither
// info nor todo), and the walk sent foop/ID itself: the inode was free at
// once, a new message could be queued on it, and the remover's foop/ID
// then removed that message's mess and intd files (qmail's synchronous
// messdone had no such window). The walk leaves a message whose removal
// is under way to its remover; a stale one beside it still goes.
//
// The loop is played by the test (a Sched built by hand) so that the walk
// is known to have passed every mess/ directory while the remover waits.
func TestCleanupSkipsEndingMessage(t *testing.T) {
	root := newTree(t)
	q := filepath.Join(root, "queue")
	old := time.Now().Add(-(ossified + 3600) * time.Second)
	const ending, stale = 28, 51 // both in mess/5
	for _, id := range []uint64{ending, stale} {
		for _, rel := range []string{fnSplit("mess", id), fnFlat("intd", id)} {
			if err := os.WriteFile(filepath.Join(q, rel), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			os.Chtimes(filepath.Join(q, rel), old, old)
		}
	}
	os.WriteFile(filepath.Join(q, fnSplit("info", ending)), []byte("Fa@b\x00"), 0o600)

	gate := make(chan struct{})
	blocked := make(chan struct{}, 1)
	setUnlinkHook(t, func(rel string, unlink func() error) error {
		err := unlink()
		if strings.HasPrefix(rel, "info/") {
			blocked <- struct{}{}
			select { // the remover is now between info and foop
			case <-gate:
			case <-time.After(20 * time.Second):
			}
		}
		return err
	})
	cf, err := loadConfig(root)
	if err != nil {
		t.Fatal(err)
	}
	var log lines
	s := &Sched{root: root, queue: q, cf: cf, log: logger{w: &log}, now: func() int64 { return time.Now().Unix() }}
	creqR, creqW := io.Pipe()
	crepR, crepW := io.Pipe()
	go func() {
		(&clean.Cleaner{Queue: q}).Serve(creqR, crepW)
		crepW.Close()
	}()
	t.Cleanup(func() { creqW.Close(); crepR.Close() })
	s.clean = &cleanPipe{req: creqW, rep: crepR}
	s.cleanAlive = true
	bare(t, s)

	s.remove(removal{id: ending, info: true}) // as messDone hands it out
	<-blocked
	s.recent = s.now()
	s.cleanupStep()
	for s.cleanupWalk != nil {
		s.cleanupStep()
	}
	if e := filepath.Join(q, fnSplit("mess", stale)); fileExists(e) {
		t.Fatalf("the walk did not remove the stale message %s; log:\n%s", e, log.String())
	}
	for _, rel := range []string{fnSplit("mess", ending), fnFlat("intd", ending)} {
		if !fileExists(filepath.Join(q, rel)) {
			t.Errorf("the walk removed %s, whose remover has yet to ask foop/%d", rel, ending)
		}
	}
	close(gate)
	select {
	case ev := <-s.events:
		if ev.kind != evRemoved || ev.removed.id != ending || !ev.removed.cleaned {
			t.Errorf("removal ended with %+v", ev.removed)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the removal did not end")
	}
	if fileExists(filepath.Join(q, fnSplit("mess", ending))) {
		t.Error("the remover's foop left the message file")
	}
}

func fileExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
