package qerr

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
)

func TestStr(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, "no error"},
		{syscall.ENOENT, "file does not exist"},
		{syscall.EACCES, "access denied"},
		{&os.PathError{Op: "open", Path: "x", Err: syscall.ENOTDIR}, "not a directory"},
		{fmt.Errorf("wrapped: %w", syscall.EISDIR), "is a directory"},
		{syscall.Errno(0), "no error"},
		{syscall.Errno(4000), "unknown error"},
		{fmt.Errorf("no errno"), "unknown error"},
	}
	for _, tt := range tests {
		if got := Str(tt.err); got != tt.want {
			t.Errorf("Str(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

func TestTempErrno(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{syscall.ENOENT, false},
		{syscall.EACCES, false},
		{syscall.EIO, true},
		{&os.PathError{Op: "chdir", Path: "x", Err: syscall.ENOSPC}, true},
		{fmt.Errorf("plain"), false},
	}
	for _, tt := range tests {
		if got := TempErrno(tt.err); got != tt.want {
			t.Errorf("TempErrno(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestBare(t *testing.T) {
	_, err := os.Open("/nonexistent/x")
	if got := Bare(err); got != syscall.ENOENT {
		t.Errorf("Bare(%v) = %v", err, got)
	}
	if got := Bare(fmt.Errorf("wrapped: %w", err)); got != syscall.ENOENT {
		t.Errorf("Bare(wrapped) = %v", got)
	}
	plain := errors.New("plain")
	if got := Bare(plain); got != plain {
		t.Errorf("Bare(plain) = %v", got)
	}
}
