package test

// The power cut of the fault campaign (fault_test.go). DESIGN.md
// ("Durability") promises that a message qmail-queue accepted (exit 0)
// survives a power cut: its data and the directory entries naming it are
// flushed before success is reported, and delivery is at least once.
//
// What is simulated: the whole tree (bin, control, queue, the alias home
// with its Maildir) lives on an ext4 file system in a sparse image file,
// loop-mounted. While several writers inject mail (through the queue
// service and, for one message in four, through a qmail-queue process of
// their own) and qmail-send delivers it locally into the Maildir and to a
// loopback SMTP sink, the file system is shut down with the ioctl
// FS_IOC_SHUTDOWN and the flag EXT4_GOING_FLAGS_NOLOGFLUSH: from that
// moment nothing the kernel has not yet written reaches the device (dirty
// pages and buffers are never written, the running journal transaction is
// never committed), and every further operation on the mount fails. The
// image is copied at once: the copy is the disk as the cut left it.
// Then every process of the tree is killed with SIGKILL (qmail-start's
// process group, and the qmail-queue runs the writers started), the old
// file system is unmounted and its image dropped (unmounting still writes
// the block device's own dirty buffers, which a real cut loses: without a
// journal that hid every fault), the copy is checked with `e2fsck -fy` in
// the variant without a journal (the kernel replays the journal of the
// other at mount) and mounted, and the system is started on the same
// tree. Every message accepted before the cut must
// then be delivered at least once; duplicates are counted and logged,
// only a loss fails. The accepted set grows round after round and every
// round checks all of it, so a delivered copy that a later cut takes
// back (a Maildir file whose data was never flushed) counts as lost too.
//
// An acceptance reported after the cut began does not count (nothing runs
// after a real power cut, and a failed file system can report a
// directory's fsync done for a link it never wrote: xfs after the
// shutdown, ext4 once errors made it read-only).
//
// Each round first writes a canary file on the mount without fsync, just
// before the cut, and checks after the remount that its data is gone: if
// it survived, the cut did not drop unflushed data and the round would
// prove nothing, so the test fails.
//
// Two variants: ext4 with its journal (the usual case) and without one
// (`-O ^has_journal`, like the root file system of the machine this test
// was written on). Without a journal the queue survives only because
// qmail-install gives its directories the directory-sync flag
// (pkg/install/dirsync.go); without the flag this variant finds channel
// files holding another file's bytes and messages stuck or lost.
// Each runs HQMAIL_POWERCUT_ROUNDS cuts (default 3) of up to
// HQMAIL_FAULT_N/3 messages each (default 100), the cut at a random moment
// after a random quarter to three quarters of the round's messages were
// accepted and at least one of the round's local deliveries was made.
//
// Not covered:
//   - Loss, reordering or tearing inside the device: every write the loop
//     device was given before the cut (including the ones still in flight)
//     reaches the image file whole, and the image file itself lives in the
//     host's page cache and is never cut. A real disk with a volatile
//     cache may lose or reorder writes no cache flush has covered; here
//     only what the mounted file system had not yet handed to the device
//     is lost, so a missing flush of the disk cache goes unnoticed.
//   - Other file systems (xfs, btrfs) and other ext4 mount options
//     (data=journal, data=writeback, nodelalloc). A QA round ran this
//     test's method on them with no loss; there the canary can survive
//     legitimately (ext3, nodelalloc and data=journal write it with the
//     next journal commit), so this check would need another witness.
//   - The mail reader's side: nobody moves messages from new/ to cur/.
//
// Root only (loop mount, ioctl); skipped, not failed, where loop devices
// cannot be used. A failed run keeps the image (its path is logged).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/qq"
	"github.com/hqmail/hqmail/test/harness"
)

const (
	fsIOCShutdown      = 0x8004587d // FS_IOC_SHUTDOWN, _IOR('X', 125, __u32)
	shutdownNoLogFlush = 2          // EXT4_GOING_FLAGS_NOLOGFLUSH
	powerCutImageSize  = 512 << 20  // sparse; the programs take about 120 MB
)

func powerCutRounds() int {
	if v, err := strconv.Atoi(os.Getenv("HQMAIL_POWERCUT_ROUNDS")); err == nil && v > 0 {
		return v
	}
	return 3
}

// TestFaultPowerCut: see the comment at the top of this file.
func TestFaultPowerCut(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test skipped under -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("the power cut needs root (loop mount, FS_IOC_SHUTDOWN)")
	}
	for _, v := range []struct {
		name    string
		journal bool
	}{{"journal", true}, {"nojournal", false}} {
		t.Run(v.name, func(t *testing.T) {
			began := time.Now()
			p := newPowerCutRun(t, v.journal)
			perRound := max(faultN()/3, 8)
			rounds := powerCutRounds()
			for k := 0; k < rounds; k++ {
				p.round(k, k*perRound, perRound)
			}
			acc := p.accepted()
			got := p.delivered()
			dups := 0
			for seq := range acc {
				dups += max(got[seq]-1, 0)
			}
			t.Logf("%s: %d cuts; %d messages accepted, %d refused (in flight at a cut); all delivered, %d duplicate copies, 0 lost; %v",
				v.name, rounds, len(acc), p.refuse, dups, time.Since(began).Round(time.Millisecond))
		})
	}
}

// --- the file system in a loop file ---

// loopFS is an ext4 image file loop-mounted on mnt.
type loopFS struct {
	t       *testing.T
	img     string // the image mounted now
	next    string // its copy taken at the cut, mounted after it
	mnt     string
	journal bool
	mounted bool
	down    atomic.Bool // shut down and not mounted again yet
}

// sbin finds an administration program, also where PATH lacks /sbin.
func sbin(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/sbin"} {
		if p := filepath.Join(d, name); isExec(p) {
			return p
		}
	}
	return ""
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// runFor runs an administration program with a deadline and returns its
// combined output and exit code (-1 if it did not run or was killed).
func runFor(timeout time.Duration, name string, args ...string) (string, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, sbin(name), args...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0, nil
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		return string(out), ee.ExitCode(), err
	default:
		return string(out), -1, err
	}
}

// newLoopFS makes and mounts the image. It skips the test where loop
// devices cannot be used and, when the test ends, unmounts the file
// system and detaches its loop device (even after a failure); the image
// is removed unless the test failed.
func newLoopFS(t *testing.T, journal bool) *loopFS {
	t.Helper()
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Skipf("no loop devices here: %v", err)
	}
	for _, prog := range []string{"mkfs.ext4", "e2fsck", "losetup", "mount", "umount"} {
		if sbin(prog) == "" {
			t.Skipf("%s not found", prog)
		}
	}
	dir, err := os.MkdirTemp("", "hqmail-powercut-")
	if err != nil {
		t.Fatal(err)
	}
	d := &loopFS{t: t, img: filepath.Join(dir, "fs.img"), journal: journal}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("keeping the image %s (mount -o loop %s DIR to look inside)", d.img, d.img)
			return
		}
		os.RemoveAll(dir)
	})
	f, err := os.Create(d.img)
	if err != nil {
		t.Fatal(err)
	}
	err = f.Truncate(powerCutImageSize)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0"}
	if !journal {
		args = append(args, "-O", "^has_journal")
	}
	if out, _, err := runFor(60*time.Second, "mkfs.ext4", append(args, d.img)...); err != nil {
		t.Fatalf("mkfs.ext4 %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	d.mnt = harness.TempRoot(t) // mode 0755: qmail's users must reach the tree
	if err := d.mount(); err != nil {
		d.detach()
		t.Skipf("cannot loop-mount an ext4 image here: %v", err)
	}
	t.Cleanup(d.release)
	return d
}

func (d *loopFS) mount() error {
	out, _, err := runFor(60*time.Second, "mount", "-t", "ext4", "-o", "loop", d.img, d.mnt)
	if err != nil {
		return fmt.Errorf("mount -o loop %s %s: %v %s", d.img, d.mnt, err, strings.TrimSpace(out))
	}
	d.mounted = true
	d.down.Store(false)
	return nil
}

// cut shuts the file system down without flushing anything: the power cut.
func (d *loopFS) cut() error {
	f, err := os.Open(d.mnt)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.IoctlSetPointerInt(int(f.Fd()), fsIOCShutdown, shutdownNoLogFlush); err != nil {
		return fmt.Errorf("ioctl FS_IOC_SHUTDOWN on %s: %w", d.mnt, err)
	}
	d.down.Store(true)
	return nil
}

// snapshot copies the image as the loop device left it at the cut: what
// the file system had handed to the device before the shutdown, nothing
// after. The mount of the old image still writes when it is unmounted
// (without a journal, the block device's own dirty metadata buffers go
// out at its last close), so the old image is dropped and the copy is
// mounted next, through a loop device of its own: mount -o loop never
// reuses the old one, whose automatic detach may still be pending.
func (d *loopFS) snapshot(k int) error {
	next := fmt.Sprintf("%s.cut%d", strings.TrimSuffix(d.img, filepath.Ext(d.img)), k+1) + ".img"
	if out, _, err := runFor(120*time.Second, "cp", "--sparse=always", d.img, next); err != nil {
		return fmt.Errorf("copying the image at the cut: %v %s", err, strings.TrimSpace(out))
	}
	d.next = next
	return nil
}

// useSnapshot drops the unmounted old image and makes the copy taken at
// the cut the image to mount.
func (d *loopFS) useSnapshot() {
	d.detach()
	os.Remove(d.img)
	d.img, d.next = d.next, ""
}

// unmount unmounts, retrying for 10 s while the mount is busy, then
// lazily.
func (d *loopFS) unmount() error {
	if !d.mounted {
		return nil
	}
	var out string
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; {
		if out, _, err = runFor(30*time.Second, "umount", d.mnt); err == nil {
			d.mounted = false
			return nil
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	d.t.Logf("umount %s: %v %s; unmounting lazily", d.mnt, err, strings.TrimSpace(out))
	if out, _, err := runFor(30*time.Second, "umount", "-l", d.mnt); err != nil {
		return fmt.Errorf("umount -l %s: %v %s", d.mnt, err, strings.TrimSpace(out))
	}
	d.mounted = false
	return nil
}

// detach detaches every loop device still backed by the image (mount
// -o loop detaches its own at umount; this is for the lazy and failed
// cases).
func (d *loopFS) detach() {
	out, _, err := runFor(30*time.Second, "losetup", "-j", d.img)
	if err != nil {
		return
	}
	for _, l := range strings.Split(out, "\n") {
		if dev, _, ok := strings.Cut(l, ":"); ok && strings.HasPrefix(dev, "/dev/loop") {
			if o, _, err := runFor(30*time.Second, "losetup", "-d", dev); err != nil {
				d.t.Logf("losetup -d %s: %v %s", dev, err, o)
			}
		}
	}
}

func (d *loopFS) release() {
	if err := d.unmount(); err != nil {
		d.t.Logf("%v", err)
	}
	d.detach()
}

// fsck runs e2fsck -fy on the unmounted image; exit codes 0-3 (clean, or
// errors corrected) are fine, 4 and above fail the test.
func (d *loopFS) fsck() string {
	out, code, err := runFor(120*time.Second, "e2fsck", "-fy", d.img)
	if code < 0 || code >= 4 {
		d.t.Fatalf("e2fsck -fy %s after the cut: exit %d (%v)\n%s", d.img, code, err, out)
	}
	if code == 0 {
		return "e2fsck: clean"
	}
	var fixes []string
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "Pass ") && !strings.HasPrefix(l, "e2fsck ") {
			fixes = append(fixes, l)
		}
	}
	return fmt.Sprintf("e2fsck exit %d: %s", code, strings.Join(fixes, "; "))
}

// writeCanary writes a file on the mount without any flush.
func (d *loopFS) writeCanary(k int) (string, []byte) {
	name := filepath.Join(d.mnt, fmt.Sprintf("canary-%d", k))
	data := bytes.Repeat([]byte(fmt.Sprintf("canary %d, never flushed\n", k)), 2048)
	if err := os.WriteFile(name, data, 0o644); err != nil {
		d.t.Fatalf("canary: %v", err)
	}
	return name, data
}

// checkCanary fails the test if the canary's data survived the cut.
func (d *loopFS) checkCanary(name string, data []byte) string {
	b, err := os.ReadFile(name)
	switch {
	case errors.Is(err, iofs.ErrNotExist):
		return "canary gone"
	case err != nil:
		d.t.Fatalf("canary: %v", err)
	case len(b) == 0:
		os.Remove(name)
		return "canary empty"
	case bytes.Contains(b, data[:64]):
		d.t.Fatalf("the canary %s, written without fsync just before the cut, survived it (%d of %d bytes): "+
			"the cut did not drop unflushed data, so this round proves nothing", name, len(b), len(data))
	}
	os.Remove(name)
	return fmt.Sprintf("canary holds %d bytes of something else", len(b))
}

// --- the run ---

// powerCutRun is a faultRun whose tree lives on a loopFS.
type powerCutRun struct {
	*faultRun
	disk *loopFS
	pgid int               // process group of the running qmail-start
	kind map[int]string    // seq -> how it was queued, under faultRun.mu
	at   map[int]time.Time // seq -> when its acceptance was reported, under faultRun.mu
}

func newPowerCutRun(t *testing.T, journal bool) *powerCutRun {
	harness.Build(t) // the programs are built outside the image, once
	disk := newLoopFS(t, journal)
	// harness.Install makes the tree under $TMPDIR: point it at the mount
	// for that call only (this test never runs in parallel with another,
	// so changing the process's environment for a moment is safe).
	tr := func() *harness.Tree {
		old, had := os.LookupEnv("TMPDIR")
		os.Setenv("TMPDIR", disk.mnt)
		defer func() {
			if had {
				os.Setenv("TMPDIR", old)
			} else {
				os.Unsetenv("TMPDIR")
			}
		}()
		return schedTree(t, map[string]string{"box": "./Maildir/\n"})
	}()
	if !strings.HasPrefix(tr.Root, disk.mnt+"/") {
		t.Fatalf("the tree %s is not on the mount %s", tr.Root, disk.mnt)
	}
	p := &powerCutRun{faultRun: newFaultRun(t, tr), disk: disk, kind: map[int]string{}, at: map[int]time.Time{}}
	faultSink(t, p.faultRun)
	// The installation is not what is tested: flush it.
	p.syncfs()
	p.startSystem()
	return p
}

func (p *powerCutRun) syncfs() {
	f, err := os.Open(p.disk.mnt)
	if err != nil {
		p.t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		p.t.Fatalf("syncfs %s: %v", p.disk.mnt, err)
	}
}

// startSystem starts qmail-start on the tree and notes its process group.
// If the test ends while the file system is cut (a failure mid-round),
// the processes are killed before the harness tries to stop them.
func (p *powerCutRun) startSystem() {
	s := p.start()
	pg, err := syscall.Getpgid(s.Pid())
	if err != nil || pg <= 1 || pg == syscall.Getpgrp() {
		p.t.Fatalf("process group of qmail-send %d: %d %v", s.Pid(), pg, err)
	}
	p.pgid = pg
	p.t.Cleanup(func() {
		if p.disk.down.Load() {
			p.killTree(pg)
		}
	})
}

// queue queues message seq through the queue service, or (one in four)
// through a qmail-queue process of its own; one in three goes to the
// remote sink, the others into the Maildir.
func (p *powerCutRun) queue(seq int) bool {
	remote, direct := seq%3 == 2, seq%4 == 3
	rcpt, kind := "box@testhost.example", "local"
	if remote {
		rcpt, kind = "joe@far.example", "remote"
	}
	if direct {
		kind += ", own qmail-queue"
	} else {
		kind += ", queue service"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Subject: power cut %d\nX-Seq: %d\n\n", seq, seq)
	for size := 200 + rand.IntN(16000); b.Len() < size; {
		b.WriteString(strings.Repeat("p", 71) + "\n")
	}
	_, err := qq.Queue(qq.Options{Root: p.tr.Root, Env: []string{"PATH=/usr/bin:/bin"}, IgnoreQMAILQUEUE: true, NoService: direct},
		strings.NewReader(b.String()), &qq.Envelope{Sender: "box@testhost.example", Recipients: []string{rcpt}})
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.refuse++
		return false
	}
	p.accept[seq] = true
	p.kind[seq] = kind
	p.at[seq] = time.Now()
	return true
}

// round k: up to n messages numbered from first are injected by four
// writers; the power is cut at a random moment while they run and local
// deliveries are being made; then everything is killed, the file system
// checked and mounted again, the system restarted, and every message
// accepted so far (in any round) must be delivered.
func (p *powerCutRun) round(k, first, n int) {
	t := p.t
	began := time.Now()
	md := p.tr.AliasMaildir()
	md0 := harness.MaildirCount(md)
	var stop atomic.Bool
	var next, accepted, refused atomic.Int64
	next.Store(int64(first))
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				seq := int(next.Add(1) - 1)
				if seq >= first+n {
					return
				}
				if p.queue(seq) {
					accepted.Add(1)
				} else {
					refused.Add(1)
				}
			}
		}()
	}
	writersDone := make(chan struct{})
	go func() { wg.Wait(); close(writersDone) }()
	// On every way out (a skip or a failure included) the writers stop.
	defer func() {
		stop.Store(true)
		select {
		case <-writersDone:
		case <-time.After(30 * time.Second):
			t.Errorf("round %d: the writers did not stop within 30 s", k+1)
		}
	}()

	// The moment: a random share of the round accepted, and local
	// delivery under way.
	target := n/4 + rand.IntN(n/2+1)
	if !harness.Eventually(60*time.Second, func() bool {
		return accepted.Load() >= int64(target) && harness.MaildirCount(md) > md0
	}) {
		t.Logf("round %d: %d accepted, %d new in the Maildir after 60 s; cutting all the same",
			k+1, accepted.Load(), harness.MaildirCount(md)-md0)
	}
	time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
	seen := p.delivered() // for the report of a loss
	inMaildir := harness.MaildirCount(md) - md0
	inTodo := len(p.tr.QueueFiles("todo")) // committed, not yet taken by qmail-send
	canary, canaryData := p.disk.writeCanary(k)
	cutAt := time.Now()
	err := p.disk.cut()
	stop.Store(true)
	if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EOPNOTSUPP) {
		t.Skipf("this kernel cannot shut an ext4 file system down: %v", err)
	} else if err != nil {
		t.Fatal(err)
	}
	if err := p.disk.snapshot(k); err != nil {
		t.Fatalf("round %d: %v", k+1, err)
	}
	atCut := accepted.Load() // a run that had finished its flushes may report after the cut
	oldLog := p.system().Log()
	p.killTree(p.pgid)
	select {
	case <-writersDone:
	case <-time.After(30 * time.Second):
		t.Fatalf("round %d: the writers did not stop within 30 s of the cut", k+1)
	}
	p.killTree(p.pgid) // a qmail-queue a writer was starting at the cut
	// An acceptance reported after the cut began is no acceptance: in a
	// real power cut nothing runs after it. (Once a file system has
	// failed, a directory's fsync can return 0 for a link it never wrote:
	// xfs after the shutdown, ext4 once errors made it read-only; a
	// success then says nothing.) Such a message need not arrive.
	late := 0
	p.mu.Lock()
	for seq, when := range p.at {
		if seq >= first && when.After(cutAt) && p.accept[seq] {
			delete(p.accept, seq)
			late++
		}
	}
	p.mu.Unlock()
	if !p.system().Wait(20 * time.Second) {
		t.Fatalf("round %d: qmail-start still runs 20 s after kill -9 of its process group", k+1)
	}
	if err := p.disk.unmount(); err != nil {
		t.Fatalf("round %d: %v", k+1, err)
	}
	p.disk.useSnapshot()
	check := "journal replayed at mount"
	if !p.disk.journal {
		check = p.disk.fsck()
	}
	if err := p.disk.mount(); err != nil {
		t.Fatalf("round %d: mounting again after the cut: %v", k+1, err)
	}
	canaryState := p.disk.checkCanary(canary, canaryData)
	anomalies := p.anomalies()
	restarted := time.Now()
	p.startSystem()
	p.settle(2 * time.Minute)
	p.verify(time.Second)
	t.Logf("round %d: cut after %d of this round's messages were accepted (%d refused: in flight at the cut; %d reported accepted after the cut began, not counted), %d in todo/, %d new files in the Maildir; %s; %s; %s; delivery after the restart %v, round %v",
		k+1, atCut, refused.Load(), late, inTodo, inMaildir, canaryState, check, anomalies,
		time.Since(restarted).Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
	if lost := p.missing(); len(lost) > 0 {
		p.explain(lost, seen, oldLog)
		t.FailNow()
	}
}

// settle waits (bounded; ALRM every 3 s so deferred deliveries are made
// now) until every accepted message is delivered, or until the queue has
// held nothing to deliver (no todo/ and no info/ entry) for 5 s: what is
// missing then is lost, and waiting longer would not bring it.
func (p *powerCutRun) settle(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	lastALRM, idleSince := time.Now(), time.Time{}
	for len(p.missing()) > 0 && time.Now().Before(deadline) {
		if len(p.tr.QueueFiles("todo")) == 0 && len(p.tr.QueueFiles("info")) == 0 {
			if idleSince.IsZero() {
				idleSince = time.Now()
			} else if time.Since(idleSince) > 5*time.Second {
				return
			}
		} else {
			idleSince = time.Time{}
		}
		if time.Since(lastALRM) > 3*time.Second {
			p.system().Signal(syscall.SIGALRM)
			lastALRM = time.Now()
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// killTree kills with SIGKILL every process of the tree: qmail-start's
// process group, and the programs of the tree this test process started
// itself (the writers' qmail-queue runs). It waits (10 s at most) until
// none is left.
func (p *powerCutRun) killTree(pgid int) {
	for i := 0; i < 100; i++ {
		pids := powerCutProcs(pgid, p.tr.Root)
		if len(pids) == 0 {
			return
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.t.Logf("processes of the tree still alive 10 s after kill -9: %v", powerCutProcs(pgid, p.tr.Root))
}

// powerCutProcs lists the live processes in process group pgid, and the
// descendants of this process that run a program under root.
func powerCutProcs(pgid int, root string) []int {
	type proc struct{ ppid, pgrp int }
	procs := map[int]proc{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm may hold anything.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		pgrp, _ := strconv.Atoi(f[2])
		procs[pid] = proc{ppid, pgrp}
	}
	self := os.Getpid()
	var out []int
	for pid, pr := range procs {
		if pgid > 1 && pr.pgrp == pgid && pid != self {
			out = append(out, pid)
			continue
		}
		mine := false
		for q, n := pr.ppid, 0; q > 0 && n < 64; q, n = procs[q].ppid, n+1 {
			if q == self {
				mine = true
				break
			}
		}
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); mine && err == nil && strings.HasPrefix(exe, root+"/") {
			out = append(out, pid)
		}
	}
	sort.Ints(out)
	return out
}

// anomalies describes what the cut left that is no loss by itself:
// empty messages in the Maildir or the queue, files in lost+found.
func (p *powerCutRun) anomalies() string {
	var parts []string
	emptyIn := func(dirs ...string) int {
		n := 0
		for _, d := range dirs {
			filepath.WalkDir(d, func(path string, e iofs.DirEntry, err error) error {
				if err == nil && e.Type().IsRegular() {
					if fi, err := e.Info(); err == nil && fi.Size() == 0 {
						n++
					}
				}
				return nil
			})
		}
		return n
	}
	md := p.tr.AliasMaildir()
	if n := emptyIn(filepath.Join(md, "new"), filepath.Join(md, "cur")); n > 0 {
		parts = append(parts, fmt.Sprintf("%d EMPTY messages in Maildir new/ or cur/", n))
	}
	// An empty mess file whose message was never committed (no todo/ or
	// info/ entry) is the leftover of a qmail-queue the cut stopped,
	// removed by qmail-send's cleanup; a committed one is damage.
	leftover, committed := 0, 0
	filepath.WalkDir(p.tr.Path("queue", "mess"), func(path string, e iofs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return nil
		}
		if fi, err := e.Info(); err != nil || fi.Size() != 0 {
			return nil
		}
		id := e.Name()
		_, errTodo := os.Stat(p.tr.Path("queue", "todo", id))
		_, errInfo := os.Stat(p.tr.Path("queue", "info", filepath.Base(filepath.Dir(path)), id))
		if errTodo == nil || errInfo == nil {
			committed++
		} else {
			leftover++
		}
		return nil
	})
	if committed > 0 {
		parts = append(parts, fmt.Sprintf("%d EMPTY mess files of committed messages", committed))
	}
	if leftover > 0 {
		parts = append(parts, fmt.Sprintf("%d empty mess files never committed (leftovers)", leftover))
	}
	if ents, _ := os.ReadDir(filepath.Join(p.disk.mnt, "lost+found")); len(ents) > 0 {
		parts = append(parts, fmt.Sprintf("%d entries in lost+found", len(ents)))
	}
	if len(parts) == 0 {
		return "no empty messages, nothing in lost+found"
	}
	return strings.Join(parts, ", ")
}

// explain reports, for each lost message, what was seen before the cut
// and every file on the mount that still holds it, with its queue
// entries and the log lines about its queue id.
func (p *powerCutRun) explain(lost []int, seen map[int]int, oldLog string) {
	t := p.t
	sort.Ints(lost)
	found := map[int][]string{}
	ids := map[int]string{}
	bin := p.tr.Path("bin")
	filepath.WalkDir(p.disk.mnt, func(path string, e iofs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if e.IsDir() && path == bin {
			return filepath.SkipDir
		}
		if !e.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(p.disk.mnt, path)
		for _, m := range anySeqRe.FindAllSubmatch(b, -1) {
			seq, _ := strconv.Atoi(string(m[1]))
			found[seq] = append(found[seq], fmt.Sprintf("%s (%d bytes)", rel, len(b)))
			if strings.Contains(path, "/queue/mess/") {
				ids[seq] = filepath.Base(path)
			}
		}
		return nil
	})
	newLog := p.system().Log()
	for i, seq := range lost {
		if i == 20 {
			t.Errorf("... and %d more lost", len(lost)-20)
			break
		}
		p.mu.Lock()
		kind := p.kind[seq]
		p.mu.Unlock()
		before := "not seen delivered just before the cut"
		if seen[seq] > 0 {
			before = "SEEN DELIVERED just before the cut"
		}
		where := "no file on the mount holds it"
		if len(found[seq]) > 0 {
			where = "held by " + strings.Join(found[seq], ", ")
		}
		detail := ""
		if id := ids[seq]; id != "" {
			detail = "; queue entries of id " + id + ": " + p.queueEntries(id) +
				"\n  log before the cut:\n" + linesWith(oldLog, "msg "+id+"\n", "msg "+id+":", "msg "+id+" ") +
				"\n  log after the restart:\n" + linesWith(newLog, "msg "+id+"\n", "msg "+id+":", "msg "+id+" ")
		}
		t.Errorf("LOST message %d (%s): %s; %s%s", seq, kind, before, where, detail)
	}
}

// queueEntries lists which queue directories hold an entry for id.
func (p *powerCutRun) queueEntries(id string) string {
	n, _ := strconv.Atoi(id)
	split := strconv.Itoa(n % 23)
	var have []string
	for _, rel := range [][]string{
		{"mess", split, id}, {"intd", id}, {"todo", id}, {"info", split, id},
		{"local", split, id}, {"remote", split, id}, {"bounce", id},
	} {
		if fi, err := os.Stat(p.tr.Path(append([]string{"queue"}, rel...)...)); err == nil {
			have = append(have, fmt.Sprintf("%s (%d bytes)", strings.Join(rel, "/"), fi.Size()))
		}
	}
	if len(have) == 0 {
		return "none"
	}
	return strings.Join(have, ", ")
}

// linesWith returns the lines of log containing any of subs, indented.
func linesWith(log string, subs ...string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		for _, s := range subs {
			if strings.Contains(l+"\n", s) {
				out = append(out, "    "+l)
				break
			}
		}
	}
	if len(out) == 0 {
		return "    (none)"
	}
	return strings.Join(out, "\n")
}
