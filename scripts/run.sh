#!/bin/sh
# make run / make stop: the whole system in a private root under the checkout.
#   sh scripts/run.sh start   install (or repair) ./run, start qmail-start and
#                             qmail-smtpd on 127.0.0.1:2525, print where mail lands
#   sh scripts/run.sh stop    stop both
# As an ordinary user every program runs as you; as root the tree uses qmail's
# users (created if missing) and root's mail goes to the alias user.
set -eu
# Files made here (control/holdremote, var/) must be readable by qmail's
# users and writable by nobody else, whatever the caller's umask.
umask 022
top=$(cd "$(dirname "$0")/.." && pwd)
ROOT=${RUNROOT:-$top/run}
# A relative RUNROOT is taken from the directory make runs in (the
# checkout), as make install takes a relative ROOT: every check below
# walks up to / from an absolute name.
case $ROOT in
/*) ;;
*) ROOT=$(pwd)/$ROOT ;;
esac
LISTEN=${LISTEN:-127.0.0.1:2525}
state=$ROOT/var
me=$(id -un)

# shq WORD: WORD as the shell reads it back, for the commands the hints
# print to be pasted: as it is when it holds only characters no shell
# splits or interprets, else in single quotes (a ' in it as '\'').
shq() {
  case $1 in
  '' | *[!A-Za-z0-9_./:-]*) printf "'%s'" "$(printf '%s\n' "$1" | sed "s/'/'\\\\''/g")" ;;
  *) printf '%s' "$1" ;;
  esac
}
# makeq WORD: shq for a variable on make's command line, where make
# expands a $ (so it is written $$).
makeq() { shq "$(printf '%s\n' "$1" | sed 's/\$/$$/g')"; }

# The hints for make run and make stop must name the same tree, and be
# commands that work when pasted (a RUNROOT with a space is quoted).
rr=""
[ -n "${RUNROOT:-}" ] && rr=" RUNROOT=$(makeq "$RUNROOT")"

# there PATH: PATH exists (a symbolic link, even dangling, counts).
there() { [ -e "$1" ] || [ -L "$1" ]; }

# istree: ROOT is a qmail tree, as qmail-install takes it (it has queue/,
# control/ or etc/ids).
istree() { there "$ROOT/queue" || there "$ROOT/control" || there "$ROOT/etc/ids"; }

# ours PID PROG: PID runs this tree's bin/PROG (a pid file left by a crash
# or a reboot may name another process by now). A program replaced by a
# reinstall since it started shows as "PATH (deleted)".
ours() {
  exe=$(readlink "/proc/$1/exe" 2>/dev/null) || return 1
  [ "${exe% (deleted)}" = "$(readlink -f "$ROOT/bin/$2")" ]
}

# parent PID: PID's parent process (from /proc/PID/stat, "pid (comm) state
# ppid ...", whose comm may hold blanks and parentheses).
parent() { sed -n 's/.*) [A-Za-z] \([0-9][0-9]*\) .*/\1/p' "/proc/$1/stat" 2>/dev/null || true; }

# checkowner start|stop: an ordinary user cannot use (or stop) a tree of
# another user's (root's, or an ordinary user's).
checkowner() {
  if [ -e "$ROOT" ] && [ "$(id -u)" != 0 ] && [ "$(stat -L -c %u "$ROOT")" != "$(id -u)" ]; then
    u=$(stat -L -c %U "$ROOT") why="a make run of theirs?"
    if [ "$(stat -L -c %u "$ROOT")" = 0 ]; then why="a make run as root?"; fi
    if [ "$1" = stop ]; then
      echo "$ROOT belongs to $u ($why): stop it as $u (make stop$rr, run as $u)" >&2
    else
      echo "$ROOT belongs to $u ($why): remove it as $u, or use RUNROOT=DIR" >&2
    fi
    exit 1
  fi
}

# checkuser: root does not start an ordinary user's tree (made a tree of
# qmail's users, the mail the user queued, in files of theirs, would stay
# in the queue for good), and says so early and plainly. It is not the
# guard: a user may rename a directory into place after it, so
# qmail-install itself refuses a root directory that is not its user's,
# or that a group or others can write, judged as it opened it.
checkuser() {
  if [ -e "$ROOT" ] && [ "$(id -u)" = 0 ] && [ "$(stat -L -c %u "$ROOT")" != 0 ]; then
    u=$(stat -L -c %U "$ROOT")
    echo "$ROOT belongs to $u (a make run of theirs): start it as them" >&2
    echo "(runuser -u $u -- make run RUNROOT=$(makeq "$ROOT")), or use RUNROOT=DIR for a tree of root's" >&2
    exit 1
  fi
}

# lock run|stop: make run and make stop on one tree take turns: two at
# once would each start a system (the second qmail-start failing, its
# pid file naming it) or stop one half of the other's. flock(1) on a file
# under var/, not on the tree's directory: qmail-install, which make run
# calls, locks that one itself for its whole run. Another one at work is
# waited for, up to 120 s (make stop waits up to 75 s for the daemons);
# the lock file names it. The daemons do not inherit the lock (9<&-).
lockfile=$state/make-run.lock
lock() {
  if ! command -v flock >/dev/null 2>&1; then
    echo "make $1 needs flock(1) (apt-get install util-linux)" >&2
    exit 1
  fi
  there "$lockfile" || : >>"$lockfile"
  exec 9<"$lockfile"
  if ! flock -n 9; then
    who=$(cat "$lockfile" 2>/dev/null || true)
    who=${who:-another make run or make stop}
    echo "$ROOT: waiting (up to 120 s) for $who to finish" >&2
    if ! flock -w 120 9; then
      echo "$ROOT: $who has not finished in 120 s; make $1 did nothing (run it again once that one has)" >&2
      exit 1
    fi
  fi
  # Who holds it, for the next one to say (not written in a tree of
  # another user's that root stops).
  w="make stop$rr"
  if [ "$1" = run ]; then w="make run LISTEN=$(makeq "$LISTEN")$rr"; fi
  { printf '%s (pid %s)\n' "$w" "$$" >"$lockfile"; } 2>/dev/null || true
}

# stop: TERM to both. qmail-smtpd -listen closes its port at once and lets
# its sessions finish (a message being received gets its 250), cutting
# those left after 60 s (qmail-smtpd(8)): it is waited for up to 65 s.
# qmail-start is waited for up to 10 s; qmail-send finishes the deliveries
# in progress before it exits, which may take longer: then "still" names
# qmail-start's pid, and its pid file is kept.
stop() {
  ran=no still=
  for f in smtpd start; do
    if [ -f "$state/$f.pid" ]; then
      pid=$(cat "$state/$f.pid")
      if ours "$pid" "qmail-$f"; then
        ran=yes
        kill -TERM "$pid" 2>/dev/null || true
        i=0 n=100
        [ "$f" = smtpd ] && n=650
        while kill -0 "$pid" 2>/dev/null && [ $i -lt $n ]; do sleep 0.1; i=$((i+1)); done
        if [ "$f" = start ] && ours "$pid" qmail-start; then still=$pid; continue; fi
      fi
      rm -f "$state/$f.pid"
    fi
  done
}

case "${1:-start}" in
stop)
  # A RUNROOT mistyped, or a make stop before any make run.
  if [ ! -d "$ROOT" ] || ! istree; then
    echo "no tree at $ROOT: nothing stopped" >&2
    exit 1
  fi
  checkowner stop
  # No var/: no make run started anything here (its pid files are there).
  if [ -d "$state" ]; then lock stop; fi
  stop
  if [ -n "$still" ]; then
    echo "stopping: qmail-send (under qmail-start, pid $still) finishes its deliveries in progress first; it exits by itself"
  elif [ -x "$ROOT/bin/qmailctl" ] && p=$("$ROOT/bin/qmailctl" pid 2>/dev/null); then
    # One this script did not start, or whose qmail-start was killed.
    echo "qmail-send (pid $p) still runs on $ROOT, not under this make run's qmail-start:"
    "$ROOT/bin/qmailctl" status 2>/dev/null | head -n 1
  elif [ "$ran" = yes ]; then echo "stopped (tree kept in $ROOT)"; else echo "not running (tree kept in $ROOT)"; fi
  exit 0 ;;
start) ;;
*) echo "usage: $0 start|stop" >&2; exit 64 ;;
esac

# Problems a newcomer meets, said plainly before qmail-install trips on them.
checkowner start
checkuser
# LISTEN is host:port, as qmail-smtpd -listen takes it: a bare port is
# said before anything is stopped.
case $LISTEN in
'' | *[!0-9]*) ;;
*)
  echo "LISTEN=$LISTEN is a port alone; LISTEN is host:port: make run$rr LISTEN=127.0.0.1:$LISTEN" >&2
  exit 1 ;;
esac
if [ "$(id -u)" = 0 ]; then
  # qmail's users must reach the tree: every directory above it needs
  # search permission for others (Debian's /root is 0700).
  d=$(dirname "$ROOT")
  while :; do
    if [ -d "$d" ] && [ -z "$(find "$d" -maxdepth 0 -perm -o+x)" ]; then
      echo "$d is not searchable by others, so qmail's users cannot reach $ROOT;" >&2
      echo "clone elsewhere, or use RUNROOT=/var/tmp/hqmail-run (make run RUNROOT=...; make stop RUNROOT=...)" >&2
      exit 1
    fi
    [ "$d" = / ] && break
    d=$(dirname "$d")
  done
fi
# -me only for a new tree: a tree that has its control/me (one made by
# make install ROOT=..., say) keeps it, and qmail-install would say so.
doinstall() {
  if [ -e "$ROOT/control/me" ]; then
    "$top/bin/qmail-install" -root "$ROOT" >/dev/null
  else
    "$top/bin/qmail-install" -root "$ROOT" -me localhost >/dev/null
  fi
}
# A new tree is made before the lock is taken: qmail-install refuses a
# directory that holds anything (var/ and the lock file) but is no tree.
# It locks the tree itself while it works; this make run, once it holds
# the lock, does not install it again.
fresh=no
if ! istree; then doinstall; fresh=yes; fi
mkdir -p "$state"
lock run
# A qmail-send this script did not start (its qmail-start is not the one
# in start.pid) holds the tree: one whose qmail-start was killed gets TERM
# and finishes its running deliveries before it exits; another was
# started otherwise (the rc script, by hand). Either way a new start
# would find the queue taken and stop at once. Said before anything is
# stopped.
if [ -x "$ROOT/bin/qmailctl" ] && p=$("$ROOT/bin/qmailctl" pid 2>/dev/null) &&
   ! { [ -f "$state/start.pid" ] && ours "$(cat "$state/start.pid")" qmail-start; }; then
  if "$ROOT/bin/qmailctl" status 2>/dev/null | grep -q '^qmail-send: exiting'; then
    echo "qmail-send (pid $p) of $ROOT still runs without the qmail-start that started it: it finishes" >&2
    echo "its deliveries in progress and exits by itself; start again once it has" >&2
  else
    echo "hqmail runs on $ROOT already (qmail-send pid $p), started otherwise than by make run:" >&2
    echo "stop it first (as it was started, or kill -TERM $p, which stops it after its deliveries in progress)" >&2
  fi
  exit 1
fi
stop
if [ -n "$still" ]; then
  echo "qmail-send (under qmail-start, pid $still) is still finishing its deliveries in progress;" >&2
  echo "start again once it has exited (it does so by itself)" >&2
  exit 1
fi
[ "$fresh" = yes ] || doinstall
# qmail-inject appends defaultdomain to a dotless host (user@localhost becomes
# user@localhost.localdomain): make both names local.
ctl=$ROOT/control
# Only files that are there: qmail-install makes them in a new tree, and one
# removed since keeps qmail's default (a locals of this line alone would
# make control/me remote).
[ -f "$ctl/defaultdomain" ] && [ "$(cat "$ctl/defaultdomain")" = localhost ] && echo localdomain > "$ctl/defaultdomain"
for f in locals rcpthosts; do
  [ -f "$ctl/$f" ] || continue
  grep -qx localhost.localdomain "$ctl/$f" || echo localhost.localdomain >> "$ctl/$f"
done
# A development instance never sends mail to the Internet by accident:
# every start holds remote delivery to all destinations, as qmailctl hold
# remote does (domains held by name stay held below the "*"; release with:
# $ROOT/bin/qmailctl release remote). qmail-send is not running yet, so
# qmailctl exits 3 ("the flag is set and the next start honours it").
rc=0
hold=$("$ROOT/bin/qmailctl" hold remote 2>&1) || rc=$?
if [ "$rc" != 0 ] && [ "$rc" != 3 ]; then
  echo "unable to hold remote delivery; not started: $hold" >&2
  exit 1
fi
mkdir -p "$state"

# qmail-start: its stdout is qmail-send's log.
# The logs name every sender and recipient: readable by the owner only.
(umask 077; touch "$state/qmail-send.log" "$state/qmail-smtpd.log")
chmod 600 "$state/qmail-send.log" "$state/qmail-smtpd.log"
# The logs grow across runs: a failed start shows only what this run wrote.
sendlog0=$(wc -c < "$state/qmail-send.log")
smtpdlog0=$(wc -c < "$state/qmail-smtpd.log")
# since LOG OFFSET: the last lines LOG got from OFFSET on; a usage
# message after a fatal line (qmail-smtpd -listen PORT) is left out, so
# the reason shows.
since() { tail -c +$(($2 + 1)) "$1" | sed '/^usage: /,$d' | tail -n 3; }
# A clean environment, as the rc script and the systemd unit give it: the
# daemons pass theirs down to every .qmail program, whose commands find
# the tree's own programs by name first (|preline procmail, |forward,
# as qmail's start scripts put /var/qmail/bin first).
path="$ROOT/bin:/usr/local/bin:/usr/bin:/bin"
# The delivery for users without a .qmail file, as the rc script and the
# systemd unit pass it: control/defaultdelivery (qmail-control(5)), the
# whole file, or ./Maildir/ when it is missing or empty.
# A file that exists but cannot be read as one (a directory, a FIFO that
# would block the start) or is larger than one argument can be (131071
# bytes: with its NUL, MAX_ARG_STRLEN; a sparse file of gigabytes would be
# read through) is an error, never the default.
dd=./Maildir/
if [ -e "$ctl/defaultdelivery" ]; then
  if [ -f "$ctl/defaultdelivery" ] && [ -n "$(find "$ctl/defaultdelivery" -prune -size +131071c)" ]; then
    echo "unable to read $ctl/defaultdelivery: larger than 131071 bytes, the most one argument can be; not started" >&2
    exit 1
  fi
  if [ ! -f "$ctl/defaultdelivery" ] || ! v=$(cat "$ctl/defaultdelivery"); then
    echo "unable to read $ctl/defaultdelivery: not a readable regular file; not started" >&2
    exit 1
  fi
  [ -z "$v" ] || dd=$v
fi
# A command put in the background by a shell that is not interactive
# starts with SIGINT ignored, and every program of the tree (qmail-start,
# the daemons, each .qmail program, qmail-smtpd and its qmail-queue runs)
# would keep it so: INT would not end qmail-start or the listener
# (qmail-start(8), qmail-smtpd(8)). coreutils' env (8.31 on) puts it back
# to its default.
defsig=
if env --default-signal=INT true 2>/dev/null; then defsig=--default-signal=INT; fi
setsid env $defsig - PATH="$path" "$ROOT/bin/qmail-start" "$dd" </dev/null >>"$state/qmail-send.log" 2>&1 9<&- &
spid=$!
echo $spid > "$state/start.pid"

if [ "$(id -u)" = 0 ]; then
  # qmail-smtpd runs as qmaild/nofiles, as under tcpserver.
  setsid env $defsig - PATH="$path" setpriv --reuid=qmaild --regid=nofiles --clear-groups \
    "$ROOT/bin/qmail-smtpd" -listen "$LISTEN" </dev/null >>"$state/qmail-smtpd.log" 2>&1 9<&- &
  # root's mail goes to the alias user, whose .qmail-default names
  # ./Maildir/ whatever defaultdelivery says.
  box=$ROOT/alias/Maildir/new/
else
  setsid env $defsig - PATH="$path" "$ROOT/bin/qmail-smtpd" -listen "$LISTEN" </dev/null >>"$state/qmail-smtpd.log" 2>&1 9<&- &
  # Your home in the tree has no .qmail file: defaultdelivery decides.
  home=$ROOT/home/$me
  nl='
'
  case $dd in
  *"$nl"*) box="$home, as the lines of $ctl/defaultdelivery say" ;;
  ./*/) box=$home/${dd#./}new/ ;;
  ./*) box="$home/${dd#./} (an mbox file)" ;;
  *) box="$home, as $ctl/defaultdelivery ($dd) says" ;;
  esac
fi
mpid=$!
echo $mpid > "$state/smtpd.pid"

# Wait (bounded) until this qmail-send, the one under the qmail-start just
# started, has written its pid (the file may hold the last run's, or
# another qmail-send's) and the listener answers.
sendpid() { tr -dc 0-9 < "$ROOT/queue/lock/sendmutex" 2>/dev/null || true; }
ready() {
  p=$(sendpid)
  [ -n "$p" ] && ours "$p" qmail-send && [ "$(parent "$p")" = "$spid" ]
}
i=0
while [ $i -lt 50 ]; do
  if ready; then break; fi
  if ! kill -0 "$spid" 2>/dev/null; then break; fi
  sleep 0.1; i=$((i+1))
done
if ! ready; then
  echo "qmail-send did not start; the end of $state/qmail-send.log:" >&2
  since "$state/qmail-send.log" "$sendlog0" >&2
  stop
  exit 1
fi

sleep 0.3
if ! kill -0 "$mpid" 2>/dev/null; then
  echo "qmail-smtpd did not start on $LISTEN:" >&2
  since "$state/qmail-smtpd.log" "$smtpdlog0" >&2
  if since "$state/qmail-smtpd.log" "$smtpdlog0" | grep -q "address already in use"; then
    # The port after the one taken (leading zeros dropped: the shell
    # reads 02525 as octal), or the words when there is none.
    port=$(printf '%s\n' "${LISTEN##*:}" | sed 's/^0*\([0-9]\)/\1/')
    next="LISTEN=HOST:PORT with another free port"
    case $port in
    '' | *[!0-9]* | ??????*) ;;
    *) if [ "$port" -lt 65535 ]; then next="LISTEN=$(makeq "${LISTEN%:*}:$((port + 1))")"; fi ;;
    esac
    echo "(another listener there? try another port: make run$rr $next; make stop$rr to stop the rest)" >&2
  else
    echo "(make stop$rr stops the rest)" >&2
  fi
  exit 1
fi

sendmail=$(shq "$ROOT/bin/sendmail") qread=$(shq "$ROOT/bin/qmail-qread") qmailctl=$(shq "$ROOT/bin/qmailctl")
# A local hold (qmailctl hold local) is kept across restarts: said too.
held=
if there "$ctl/holdlocal"; then
  held="
  local delivery is held (control/holdlocal, kept across restarts); release: $qmailctl release local"
fi
cat <<MSG
hqmail is running in $ROOT
  SMTP:      $LISTEN   (e.g. swaks --server $(shq "$LISTEN") --to $me@localhost)
  sendmail:  $sendmail $me@localhost < message
  mail to $me@localhost lands in: $box
  log:       $state/qmail-send.log
  queue:     $qread      status: $qmailctl status
  remote delivery is held; release: $qmailctl release remote$held
  stop:      make stop$rr
MSG
