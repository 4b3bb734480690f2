package inject

import (
	"io"
	"path/filepath"
)

// Main is qmail-inject: it parses argv ("qmail-inject [-nNaAhH] [-f
// sender] [--] [recip ...]") and runs the job. Option errors print
// "qmail-inject: illegal option -- X" (or "option requires an argument")
// and exit 100 before any input is read.
func Main(argv []string, root string, env []string, stdin io.Reader, stdout, stderr io.Writer) int {
	prog := "qmail-inject"
	if len(argv) > 0 {
		prog = filepath.Base(argv[0])
		argv = argv[1:]
	}
	j := &Job{Root: root, Env: env, Stdin: stdin, Stdout: stdout, Stderr: stderr}
	i := 0
args:
	for ; i < len(argv); i++ {
		a := argv[i]
		if len(a) < 2 || a[0] != '-' {
			break
		}
		if a == "--" {
			i++
			break
		}
		for k := 1; k < len(a); k++ {
			switch c := a[k]; c {
			case 'a':
				j.Strategy = RecipArgs
			case 'A':
				j.Strategy = RecipDefault
			case 'h':
				j.Strategy = RecipHeader
			case 'H':
				j.Strategy = RecipBoth
			case 'n':
				j.Print = true
			case 'N':
				j.Print = false
			case 'f':
				var v string
				if k+1 < len(a) {
					v = a[k+1:]
				} else if i+1 < len(argv) {
					i++
					v = argv[i]
				} else {
					io.WriteString(stderr, prog+": option requires an argument -- f\n")
					return 100
				}
				j.Sender = &v
				continue args
			default:
				io.WriteString(stderr, prog+": illegal option -- "+string(c)+"\n")
				return 100
			}
		}
	}
	j.Args = argv[i:]
	return j.Run()
}
