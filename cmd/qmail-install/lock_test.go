package main

import (
	"bufio"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestCheckWaitsForRepair: -check holds a shared flock on the root: held
// exclusively (by a repair at work), -check says it waits and goes on
// once it is released; held shared (another -check), it does not wait.
func TestCheckWaitsForRepair(t *testing.T) {
	root := tree(t)
	waiting := "qmail-install: waiting for another qmail-install on " + root
	for _, tc := range []struct {
		how  int
		want []string // the lines -check writes while the lock is held
	}{{unix.LOCK_EX, []string{waiting}}, {unix.LOCK_SH, nil}} {
		held, err := os.Open(root)
		if err != nil {
			t.Fatal(err)
		}
		defer held.Close()
		if err := unix.Flock(int(held.Fd()), tc.how); err != nil {
			t.Fatal(err)
		}
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 100)
		go func() {
			defer close(lines)
			defer r.Close()
			for sc := bufio.NewScanner(r); sc.Scan(); {
				lines <- sc.Text()
			}
		}()
		done := make(chan int, 1)
		go func() {
			done <- run([]string{"-root", root, "-check"}, w)
			w.Close()
		}()
		timeout := time.After(60 * time.Second)
		for _, want := range tc.want {
			select {
			case l := <-lines:
				if l != want {
					t.Fatalf("lock %d held: %q, want %q", tc.how, l, want)
				}
			case <-timeout:
				t.Fatalf("lock %d held: no %q within 60s", tc.how, want)
			}
		}
		if tc.how == unix.LOCK_EX {
			held.Close() // the lock with it
		}
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("lock %d: exit %d", tc.how, code)
			}
		case <-timeout:
			t.Fatalf("lock %d: -check did not end within 60s", tc.how)
		}
		for l := range lines {
			t.Errorf("lock %d: unexpected %q", tc.how, l)
		}
		held.Close()
	}
}
