package sched

import (
	"os"
	"path/filepath"
	"testing"
)

// notDir makes every stat of a file in queue directory rel fail with
// ENOTDIR (not ENOENT) by putting a plain file where the directory was.
func notDir(t *testing.T, q, rel string) {
	t.Helper()
	d := filepath.Join(q, rel)
	if err := os.RemoveAll(d); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(d, nil, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestStatLaterWarns: a stat that fails for a reason other than the
// file's absence, in the done step (channel, todo or info file) or in
// pqadd (todo, info or mess file), puts the message back on its list for
// 123 seconds and logs qmail's "warning: unable to stat FILE; will try
// again later" at each try, the retries included (it was logged by none
// of these but pqadd's channel-file stat, so a message waited for ever in
// silence).
func TestStatLaterWarns(t *testing.T) {
	const id = uint64(4242)
	sp := split(id)
	mess := func(q string) {
		os.WriteFile(filepath.Join(q, fnSplit("mess", id)), []byte("Subject: x\n\nx\n"), 0o600)
	}
	info := func(q string) {
		os.WriteFile(filepath.Join(q, fnSplit("info", id)), []byte("Fann@example.org\x00"), 0o600)
	}
	cases := []struct {
		name  string
		done  bool // the done step, else pqadd
		setup func(t *testing.T, q string)
		file  string
	}{
		{"done/local", true, func(t *testing.T, q string) { notDir(t, q, "local/"+sp) }, "local/" + sp + "/4242"},
		{"done/remote", true, func(t *testing.T, q string) { notDir(t, q, "remote/"+sp) }, "remote/" + sp + "/4242"},
		{"done/todo", true, func(t *testing.T, q string) { notDir(t, q, "todo") }, "todo/4242"},
		{"done/info", true, func(t *testing.T, q string) { notDir(t, q, "info/"+sp) }, "info/" + sp + "/4242"},
		{"pqadd/todo", false, func(t *testing.T, q string) { notDir(t, q, "todo") }, "todo/4242"},
		{"pqadd/info", false, func(t *testing.T, q string) { notDir(t, q, "info/"+sp) }, "info/" + sp + "/4242"},
		{"pqadd/mess", false, func(t *testing.T, q string) { info(q); notDir(t, q, "mess/"+sp) }, "mess/" + sp + "/4242"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := newTree(t)
			q := filepath.Join(root, "queue")
			mess(q)
			tc.setup(t, q)
			var log lines
			now := int64(1000)
			s := &Sched{root: root, queue: q, log: logger{w: &log}, now: func() int64 { return now }, recent: now, cf: &config{}}
			list, step := &s.fail, s.pqadd
			if tc.done {
				list, step = &s.done, s.messDone
			}
			want := "warning: unable to stat " + tc.file + "; will try again later\n"
			step(id)
			for try := 1; try <= 3; try++ { // the first try and two retries
				if n := log.count(want); n != try {
					t.Fatalf("after try %d: %d warnings %q, want %d; log:\n%s", try, n, want, try, log.String())
				}
				e, ok := list.min()
				if !ok || e.id != id || e.due != now+sleepSysfail || list.len() != 1 {
					t.Fatalf("after try %d: list min %v, %v (%d entries), want %d due at %d", try, e, ok, list.len(), id, now+sleepSysfail)
				}
				if try == 3 {
					break
				}
				// The retry, as passStep makes it 123 s later.
				now += sleepSysfail
				s.recent = now
				list.delmin()
				step(id)
			}
			if log.count("warning: unable to stat ") != 3 {
				t.Errorf("other warnings logged:\n%s", log.String())
			}
		})
	}
}

// TestStatLaterWarnsNotOnNoent: a file that is simply gone is no failure
// and logs nothing (the done step returns at once on a missing info file).
func TestStatLaterWarnsNotOnNoent(t *testing.T) {
	root := newTree(t)
	q := filepath.Join(root, "queue")
	var log lines
	s := &Sched{root: root, queue: q, log: logger{w: &log}, now: func() int64 { return 1000 }, recent: 1000, cf: &config{}}
	s.messDone(4242)
	s.pqadd(4242)
	if log.String() != "" || s.done.len() != 0 || s.fail.len() != 0 {
		t.Errorf("log %q, done %d, fail %d: want nothing", log.String(), s.done.len(), s.fail.len())
	}
}
