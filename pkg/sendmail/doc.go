// Package sendmail is the sendmail(8) compatibility wrapper of
// spec/injection.md §2, extended for what MUAs, cron and PPP scripts pass
// (issue 5): -t -f -r -F -bm -bs -bp -bi -q[...] do something, the
// delivery, DSN and configuration options (-i -oX -odX -B -N -R -V -L -C -v
// -G -U ...) are accepted and ignored, and errors use sysexits codes.
//
// Unlike qmail's sendmail it does not exec qmail-inject: the message is
// injected in-process through pkg/inject (the same code, same output), which
// then runs qmail-queue. Invoked as mailq it lists the queue (qmail-qread),
// as newaliases it runs DIR/bin/newaliases when that exists.
package sendmail
