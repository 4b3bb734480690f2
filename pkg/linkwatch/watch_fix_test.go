package linkwatch

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hqmail/hqmail/pkg/hold"
)

// flaky is a recorder whose actions fail as told, and which says what the
// last decision recorded is (Wanted) as the test sets it.
type flaky struct {
	recorder
	holdFails atomic.Int32  // the next n holds fail
	want      atomic.Value  // string: what Wanted returns; "" for the last action's word
	block     chan struct{} // when not nil, Release waits for it to close
}

func (f *flaky) Hold(string) error {
	f.add("hold")
	if f.holdFails.Add(-1) >= 0 {
		return errors.New("qmail-send did not confirm (the flag is changed)")
	}
	return nil
}

func (f *flaky) Release(string) error {
	f.add("release")
	if f.block != nil {
		<-f.block
	}
	return nil
}

func (f *flaky) Wanted() (string, error) {
	if w, _ := f.want.Load().(string); w != "" {
		return w, nil
	}
	seq := strings.Split(f.get(), ",")
	return seq[len(seq)-1], nil
}

// linkSwitch is a link the test brings up and down.
func linkSwitch(up *atomic.Bool) func() (*Snapshot, error) {
	return func() (*Snapshot, error) { return snap(up.Load()), nil }
}

// startRun runs the watcher until the test ends.
func startRun(t *testing.T, cfg Config, h Hooks, act Actions) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { Run(ctx, cfg, h, act, func(string, ...any) {}); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// waitSeq waits (bounded) until the actions are want.
func waitSeq(t *testing.T, r *flaky, want string) bool {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if r.get() == want {
			return true
		}
	}
	return false
}

// TestFailedHoldActsAgain: a hold that fails (qmailctl changed the flag
// but qmail-send did not confirm) leaves the state unknown, not released:
// the link that comes back up is released again. Before, the watcher
// took itself for released and did nothing, and mail stayed held.
func TestFailedHoldActsAgain(t *testing.T) {
	var up atomic.Bool
	up.Store(true)
	f := &flaky{}
	f.holdFails.Store(1 << 30) // every hold fails
	startRun(t, Config{UpDelay: 10 * time.Millisecond, Recheck: 5 * time.Millisecond},
		Hooks{Snapshot: linkSwitch(&up), Now: time.Now}, f)
	if !waitSeq(t, f, "release") {
		t.Fatalf("actions %q, want release", f.get())
	}
	up.Store(false)
	for deadline := time.Now().Add(5 * time.Second); !strings.HasPrefix(f.get(), "release,hold"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("actions %q, want release,hold", f.get())
		}
	}
	up.Store(true)
	for deadline := time.Now().Add(5 * time.Second); strings.Count(f.get(), "release") < 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after failed holds and the link up again: actions %q, want a release again", f.get())
		}
	}
}

// TestRecheckFollowsLinkWant: a hook recorded (and applied) a hold while
// the watcher has the link released and up: the watcher acts again.
func TestRecheckFollowsLinkWant(t *testing.T) {
	var up atomic.Bool
	up.Store(true)
	f := &flaky{}
	startRun(t, Config{UpDelay: 10 * time.Millisecond, Recheck: 5 * time.Millisecond},
		Hooks{Snapshot: linkSwitch(&up), Now: time.Now}, f)
	if !waitSeq(t, f, "release") {
		t.Fatalf("actions %q, want release", f.get())
	}
	f.want.Store("hold") // for good: the watcher releases at every look
	for deadline := time.Now().Add(5 * time.Second); !strings.HasPrefix(f.get(), "release,release"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after a hook's hold while up: actions %q, want release,release", f.get())
		}
	}
}

// TestDownOvertakesRelease: while a release waits for qmail-send's
// confirmation, a down holds at once; the release that ends after it
// leaves the hold standing, and no release follows while down.
func TestDownOvertakesRelease(t *testing.T) {
	var up atomic.Bool
	up.Store(true)
	f := &flaky{block: make(chan struct{})}
	var once sync.Once
	unblock := func() { once.Do(func() { close(f.block) }) }
	startRun(t, Config{UpDelay: 10 * time.Millisecond, Recheck: 5 * time.Millisecond},
		Hooks{Snapshot: linkSwitch(&up), Now: time.Now}, f)
	t.Cleanup(unblock) // runs before startRun's: the release ends first
	if !waitSeq(t, f, "release") {
		t.Fatalf("actions %q, want release", f.get())
	}
	up.Store(false)
	if !waitSeq(t, f, "release,hold") {
		t.Fatalf("a down during a release's wait: actions %q, want the hold at once", f.get())
	}
	unblock()
	time.Sleep(100 * time.Millisecond) // looks enough to act, if it did
	if got := f.get(); got != "release,hold" {
		t.Fatalf("after the overtaken release ended: actions %q", got)
	}
}

// TestActionsSeeAppliedWord: a hook records the other word between the
// watcher's record and its apply; apply applies the hook's, and the
// watcher's action is then no success.
func TestActionsSeeAppliedWord(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"control", "queue/lock"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	afterRecord = func() {
		if err := hold.WriteLinkWant(root, "release"); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(func() { afterRecord = func() {} })
	a := ctlActions{root}
	if err := a.Hold("test"); err == nil {
		t.Errorf("hold reported done although the hook's release was applied")
	}
	afterRecord = func() {}
	if w, err := a.Wanted(); err != nil || w != "release" {
		t.Errorf("Wanted: %q, %v", w, err)
	}
	if err := a.Hold("test"); err != nil {
		t.Errorf("hold: %v", err)
	}
	if w, err := a.Wanted(); err != nil || w != "hold" {
		t.Errorf("Wanted after the hold: %q, %v", w, err)
	}
}

// twoStepper is flaky whose release comes in two steps: the record, which
// must happen in the loop, and the apply, which waits (block).
type twoStepper struct{ flaky }

func (f *twoStepper) RecordRelease() error { f.add("record-release"); return nil }
func (f *twoStepper) ApplyRelease() error {
	f.add("apply-release")
	<-f.block
	return nil
}

// TestReleaseRecordedInLoop: a release's record is made by the loop before
// it looks again, and only its apply (the wait for qmail-send) runs in the
// background; a down that follows is recorded after it. A release run
// whole in a goroutine that started late could record itself after the
// hold, and the apply of either would then release a link that is down.
func TestReleaseRecordedInLoop(t *testing.T) {
	var up atomic.Bool
	up.Store(true)
	f := &twoStepper{flaky{block: make(chan struct{})}}
	var once sync.Once
	unblock := func() { once.Do(func() { close(f.block) }) }
	startRun(t, Config{UpDelay: 10 * time.Millisecond, Recheck: 5 * time.Millisecond},
		Hooks{Snapshot: linkSwitch(&up), Now: time.Now}, f)
	t.Cleanup(unblock) // runs before startRun's: the apply ends first
	if !waitSeq(t, &f.flaky, "record-release,apply-release") {
		t.Fatalf("actions %q, want the record, then the apply", f.get())
	}
	up.Store(false)
	if !waitSeq(t, &f.flaky, "record-release,apply-release,hold") {
		t.Fatalf("actions %q, want the hold after the release's record", f.get())
	}
}
