package usertools

import (
	"bytes"
	"strings"
	"testing"
)

// TestPrelineUpperCaseOptions: qmail 1.03's preline takes -F, -R and -D,
// which put back the line the lower-case option leaves out, the later
// option winning ("frdFRD"). They were usage errors, exit 100: a .qmail
// line "|preline -F procmail" bounced every message.
func TestPrelineUpperCaseOptions(t *testing.T) {
	localEnv(t)
	body := "Subject: x\n\nbody\n"
	for _, tc := range []struct {
		args []string
		head string
	}{
		{[]string{"-F"}, testUF + testRP + testDT},
		{[]string{"-R", "-D"}, testUF + testRP + testDT},
		{[]string{"-fF"}, testUF + testRP + testDT},
		{[]string{"-Ff"}, testRP + testDT},
		{[]string{"-f", "-F"}, testUF + testRP + testDT},
		{[]string{"-F", "-f"}, testRP + testDT},
		{[]string{"-frd", "-R"}, testRP},
		{[]string{"-frdFRD"}, testUF + testRP + testDT},
		{[]string{"-dD", "-d"}, testUF + testRP},
		{[]string{"-DRF", "--"}, testUF + testRP + testDT},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out := outFile(t)
			var stderr bytes.Buffer
			args := append(append([]string(nil), tc.args...), "cat")
			code := within(t, "preline cat", func() int { return PrelineMain(args, strings.NewReader(body), out, &stderr) })
			if code != 0 || stderr.Len() != 0 {
				t.Fatalf("exit %d, stderr %q", code, stderr.String())
			}
			if got := string(read(t, out)); got != tc.head+body {
				t.Errorf("program got %q, want %q", got, tc.head+body)
			}
		})
	}
}

// TestPrelineUpperCaseNeedsVariable: a line put back by an upper-case
// option needs its variable again.
func TestPrelineUpperCaseNeedsVariable(t *testing.T) {
	localEnv(t)
	unsetenv(t, "RPLINE")
	var stdout, stderr bytes.Buffer
	code := PrelineMain([]string{"-r", "-R", "cat"}, strings.NewReader("b"), &stdout, &stderr)
	if code != 100 || !strings.Contains(stderr.String(), "$RPLINE is not set") || stdout.Len() != 0 {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
	stdout.Reset()
	stderr.Reset()
	if code := PrelineMain([]string{"-R", "-r", "cat"}, strings.NewReader("b"), &stdout, &stderr); code != 0 || stdout.String() != testUF+testDT+"b" {
		t.Errorf("-R -r: exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
}
