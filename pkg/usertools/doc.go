// Package usertools holds the small programs a user names in a .qmail file,
// around qmail-local's program deliveries (qmail-command(8)):
//
//   - maildirmake DIR: a new Maildir (DIR, DIR/tmp, DIR/new, DIR/cur, 0700).
//   - preline: a program gets the message with the From_, Return-Path and
//     Delivered-To lines qmail-local keeps in $UFLINE, $RPLINE and $DTLINE.
//   - bouncesaying: bounce with a given text, always or when a test
//     program succeeds.
//   - condredirect: forward to another address when a test program
//     succeeds, and skip the rest of the .qmail file.
//   - except: a program's exit 0 becomes 100 (bounce), 111 stays, all
//     else becomes 0.
//   - forward: forward to addresses, as a & line does.
//
// Each runs as the delivering user, started by qmail-local's /bin/sh in the
// user's home, with the message on fd 0 and fds 1 and 2 going into the
// delivery report. They speak qmail-local's exit codes: 0 go on with the
// next line, 99 delivered and skip the following lines, 100 permanent
// failure (bounce), 111 temporary failure (try again later). So -h and
// --help (Help) print the usage and exit 100, not 0: a .qmail line given
// -h by mistake bounces the message instead of passing it on. maildirmake,
// run by hand, is the exception: its -h exits 0.
//
// A missing qmail-local variable ($UFLINE, $RPLINE, $DTLINE, $NEWSENDER)
// is a usage error, exit 100, as in qmail's own tools: qmail-local always
// sets them, so their absence means the program was run some other way,
// and trying the delivery again would not set them.
package usertools
