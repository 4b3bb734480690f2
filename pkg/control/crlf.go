package control

import "strings"

// CRLFAdvice is the advice for a file saved with CRLF line endings (by a
// Windows editor, say): the command that drops the CR at the end of each
// of its lines in place, path quoted for the shell where it needs to be.
// qmail-showctl and qmail-install -check end their warnings with it.
func CRLFAdvice(path string) string {
	return "convert it with sed -i 's/\\r$//' " + shellWord(path)
}

// pathChars are the bytes a path may hold and still be one shell word
// without quotes.
const pathChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+,:@%="

// shellWord returns s as one word of a shell command line: unchanged when
// it is made only of pathChars, else in single quotes (a quote inside
// ends the quoting, is escaped with a backslash, and quoting resumes).
func shellWord(s string) string {
	if s != "" && strings.Trim(s, pathChars) == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
