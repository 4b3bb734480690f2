package sched

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// nofileChildEnv makes TestPreprocessDescriptorLimit, in a child process
// of the test binary, the scheduler under a descriptor limit: "LIMIT
// PRETEND" sets RLIMIT_NOFILE (soft and hard) to LIMIT, and with PRETEND
// "1" tells fitBatch the limit is high, so that only the halving after
// EMFILE can help. A limit is the whole process's, hence the child.
const nofileChildEnv = "HQMAIL_TEST_SCHED_NOFILE"

// TestPreprocessDescriptorLimit: with few descriptors, every message is
// preprocessed and delivered once, in a bounded number of retries. Before,
// a step took up to batchMax (32) messages, each with its three files open
// until the round's fsyncs, and ran out of descriptors (EMFILE) at every
// retry, 123 seconds apart, the same way for ever (QA: 195 of 200 messages
// never preprocessed under a limit of 32, none more after 5). Now the
// batch is fitted to the limit at start (and said so), and a step that
// runs out anyway halves the batch for the next try.
func TestPreprocessDescriptorLimit(t *testing.T) {
	if spec := os.Getenv(nofileChildEnv); spec != "" {
		preprocessUnderLimit(t, spec)
		return
	}
	for _, c := range []struct {
		name, spec string
	}{
		{"fitted to 32", "32 0"},
		{"fitted to 64", "64 0"},
		{"halved under 64", "64 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestPreprocessDescriptorLimit$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(), nofileChildEnv+"="+c.spec)
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "--- PASS: TestPreprocessDescriptorLimit") {
				t.Errorf("child (%s): %v\n%s", c.spec, err, out)
			}
		})
	}
}

// preprocessUnderLimit is the child of TestPreprocessDescriptorLimit.
func preprocessUnderLimit(t *testing.T, spec string) {
	limitText, pretend, _ := strings.Cut(spec, " ")
	limit, err := strconv.Atoi(limitText)
	if err != nil {
		t.Fatalf("bad %s %q", nofileChildEnv, spec)
	}
	if pretend == "1" {
		nofileLimits = func(int64) (int64, int64) { return 1 << 20, 1 << 20 }
	}
	const n = 100
	root := newTree(t)
	mkCtlFIFO(t, root)
	for i := 0; i < n; i++ {
		queueMsg(t, root, "s@example.org", "a@local.example", "b@remote.example")
	}
	rl := syscall.Rlimit{Cur: uint64(limit), Max: uint64(limit)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatalf("setrlimit %d: %v", limit, err)
	}
	var clock atomic.Int64
	clock.Store(time.Now().Unix())
	e := startSpiedClock(t, root, &record{}, clock.Load)

	// Each step that ran out of descriptors logs its failures and waits
	// sleepSysfail seconds: the clock is moved past that (and the loop
	// woken with a trigger) once per new failure, at most maxRetries
	// times. Halving 32 down to 1 takes five.
	failures := func() int {
		s := e.log.String()
		return strings.Count(s, "warning: unable to create ") + strings.Count(s, "warning: unable to open ") +
			strings.Count(s, "warning: trouble writing to ")
	}
	const maxRetries = 10
	retries, seen := 0, 0
	deadline := time.Now().Add(90 * time.Second)
	for e.log.count("end msg ") < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages done after 90 s (%d retries); log:\n%s", e.log.count("end msg "), n, retries, e.log.String())
		}
		if f := failures(); f > seen {
			seen = f
			if retries++; retries > maxRetries {
				t.Fatalf("%d of %d messages done after %d retries; log:\n%s", e.log.count("end msg "), n, maxRetries, e.log.String())
			}
			clock.Add(sleepSysfail + 1)
		}
		e.trigger()
		time.Sleep(10 * time.Millisecond)
	}
	e.stop()
	log := e.log.String()
	t.Logf("%d retries; %d failure lines", retries, failures())
	for c, sp := range e.spawn {
		if reqs, _, _ := sp.counts(); reqs != n {
			t.Errorf("%s: %d deliveries, want %d (one per message)", chanName[c], reqs, n)
		}
	}
	if pretend == "1" {
		if want := "warning: preprocessing batch lowered from 32 messages to 16: too many open files\n"; !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
		return
	}
	fit := (limit - fdsOther - fdsPerStep) / fdsPerMessage
	want := fmt.Sprintf("warning: preprocessing batch lowered from 32 messages to %d: the descriptor limit (RLIMIT_NOFILE) is %d, hard limit %d; "+
		"a message holds up to 3 while its batch is written and %d are kept for the rest\n", max(fit, 1), limit, limit, fdsOther+fdsPerStep)
	if strings.Count(log, want) != 1 {
		t.Errorf("log lacks %q once:\n%s", want, log)
	}
	if f := failures(); f != 0 {
		t.Errorf("%d failures with the fitted batch, want none:\n%s", f, log)
	}
}
