package test

// Keep mode on the local side: qmail-lspawn's kept qmail-local -k (one per
// user) and qmail-getpw -k (qmail-lspawn(8), KEEP MODE; control/localcache).

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hqmail/hqmail/test/harness"
)

// keepLines waits for n lines in the alias user's keep.out and returns
// them as PPID -> the "EXT RECIPIENT" of each line.
func keepLines(t *testing.T, tr *harness.Tree, n int) [][2]string {
	t.Helper()
	var lines []string
	harness.WaitFor(t, 60*time.Second, func() bool {
		b, _ := os.ReadFile(tr.Path("alias", "keep.out"))
		lines = strings.Split(strings.TrimSpace(string(b)), "\n")
		return len(b) > 0 && len(lines) >= n
	})
	var out [][2]string
	for _, l := range lines {
		ppid, rest, _ := strings.Cut(l, " ")
		out = append(out, [2]string{ppid, rest})
	}
	return out
}

// TestKeepLocal: with one delivery at a time, ten deliveries to one user
// are made by one kept qmail-local (the programs it runs all have it as
// their parent), each with its own environment; with control/localcache 0
// every delivery has its own qmail-local, as in qmail.
func TestKeepLocal(t *testing.T) {
	tr := schedTree(t, map[string]string{"box-default": "|echo \"$PPID $EXT $RECIPIENT\" >> keep.out\n"})
	tr.Control("concurrencylocal", "1\n")
	sys := tr.Start(t, "./Maildir/")
	const n = 10
	for i := 0; i < n; i++ {
		if err := tr.Queue(t, "s@testhost.example", []string{fmt.Sprintf("box-a%d@testhost.example", i)}, []byte("Subject: k\n\nk\n")); err != nil {
			t.Fatal(err)
		}
	}
	got := keepLines(t, tr, n)
	parents := map[string]bool{}
	seen := map[string]int{}
	for _, l := range got {
		parents[l[0]] = true
		seen[l[1]]++
	}
	for i := 0; i < n; i++ {
		want := fmt.Sprintf("box-a%d box-a%d@testhost.example", i, i) // the alias user: EXT is the whole local part
		if seen[want] != 1 {
			t.Errorf("environment %q seen %d times; lines: %v", want, seen[want], got)
		}
	}
	if len(parents) != 1 {
		t.Errorf("%d qmail-local processes for %d deliveries to one user, one at a time: want 1", len(parents), n)
	}
	sys.WaitLogCount(t, "end msg ", n, 30*time.Second)

	// localcache 0: one qmail-local per delivery.
	os.Remove(tr.Path("alias", "keep.out"))
	tr.Control("localcache", "0\n")
	for i := 0; i < n; i++ {
		if err := tr.Queue(t, "s@testhost.example", []string{fmt.Sprintf("box-b%d@testhost.example", i)}, []byte("Subject: k\n\nk\n")); err != nil {
			t.Fatal(err)
		}
	}
	got = keepLines(t, tr, n)
	parents = map[string]bool{}
	for _, l := range got {
		parents[l[0]] = true
	}
	if len(parents) != n {
		t.Errorf("%d qmail-local processes for %d deliveries with localcache 0: want %d", len(parents), n, n)
	}
	sys.Stop(t)
}
