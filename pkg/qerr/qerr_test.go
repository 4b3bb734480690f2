package qerr

import (
	"errors"
	"fmt"
	"testing"
)

func TestClasses(t *testing.T) {
	cause := errors.New("cause")
	for _, tc := range []struct {
		name   string
		err    error
		code   int
		letter byte
		perm   bool
		text   string
	}{
		{"nil", nil, 0, 'K', false, ""},
		{"temp", Temp("try %d", 1), 111, 'Z', false, "try 1"},
		{"perm", Perm("no %s", "way"), 100, 'D', true, "no way"},
		{"unclassified", cause, 111, 'Z', false, "cause"},
		{"wrapped perm", fmt.Errorf("ctx: %w", Perm("x")), 100, 'D', true, "ctx: x"},
		{"wrap temp", Wrap(cause, false, "text"), 111, 'Z', false, "text"},
		{"wrap perm", Wrap(cause, true, "text"), 100, 'D', true, "text"},
		{"wrap without text", Wrap(cause, false, ""), 111, 'Z', false, "cause"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ExitCode(tc.err); got != tc.code {
				t.Errorf("ExitCode = %d", got)
			}
			if got := Letter(tc.err); got != tc.letter {
				t.Errorf("Letter = %c", got)
			}
			if got := IsPerm(tc.err); got != tc.perm {
				t.Errorf("IsPerm = %v", got)
			}
			if tc.err != nil && tc.err.Error() != tc.text {
				t.Errorf("Error() = %q", tc.err.Error())
			}
		})
	}
	if !errors.Is(Wrap(cause, false, "t"), cause) {
		t.Error("Wrap does not unwrap to its cause")
	}
}
