# hqmail: a qmail-compatible MTA suite with hold flags.
# make          build every program into bin/
# make test     the full test suite (unit, vectors, integration)
# make run      the whole system as you, in a private root under ./run
# make install  install into $(ROOT) (default /var/qmail; run as root);
#               ME=host.example.org names the mail host (control/me)
# make help     the targets and variables

# go from PATH, else where the Go tarball puts it: sudo's secure_path (Debian)
# drops /usr/local/go/bin, and "sudo make install" must still find it.
GO      ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
GOFMT   ?= $(shell command -v gofmt 2>/dev/null || echo /usr/local/go/bin/gofmt)
ROOT    ?= /var/qmail
# A relative ROOT is taken from this directory: the links install-links
# makes in /usr/sbin and /usr/bin, and the hints install prints, must name
# the tree from anywhere.
nothing :=
blank := $(nothing) $(nothing)
ifeq ($(filter /%,$(ROOT)),)
override ROOT := $(if $(findstring $(blank),$(ROOT)),$(CURDIR)/$(ROOT),$(abspath $(ROOT)))
endif
# DESTDIR and PREFIX, which many Makefiles take, mean nothing here: the
# tree is ROOT, whole. Given on the command line they would be ignored and
# the install would go to /var/qmail, so install refuses them.
NOT_TAKEN := $(strip $(if $(filter command,$(firstword $(origin DESTDIR))),DESTDIR) $(if $(filter command,$(firstword $(origin PREFIX))),PREFIX))
ME      ?=
BIN     := bin
GOFLAGS_BUILD := -trimpath
# The programs are built without their symbol table and DWARF data, as
# qmail's conf-ld ("cc -s") strips its own: 78 MB for bin/ instead of 119
# on amd64, which a small board feels. Panics still name their functions
# (Go keeps its own line tables). For perf(1) profiles, which read the
# symbol table: make build GO_LDFLAGS= (not LDFLAGS, which C builds export)
GO_LDFLAGS ?= -s -w
export CGO_ENABLED := 0
# No version-control stamp in the programs (nothing reads it): git refuses
# to look into a checkout another user owns ("dubious ownership"), and go
# build then fails on every package, as when a user's clone is built with
# su or sudo -i, or root's clone by an ordinary user. Exported, so that the
# tests' own go build calls get it too.
export GOFLAGS := $(strip $(GOFLAGS) -buildvcs=false)

.PHONY: all help build test vet fmt-check unit race cross integration run stop install install-links bench fuzz clean

all: build

help:
	@echo "make              build every program into bin/ (stripped; GO_LDFLAGS= keeps symbols for perf)"
	@echo "make test         the full suite: gofmt, vet, unit, race, cross, integration (about 15 minutes)"
	@echo "make cross        vet for arm and mips64, the unit tests as 386 (part of make test)"
	@echo "make run          the whole system in ./run (LISTEN=127.0.0.1:2525, RUNROOT=DIR)"
	@echo "make stop         stop it (the same RUNROOT=DIR if one was given)"
	@echo "make install      install into ROOT=$(ROOT) as root, man pages in ROOT/man; ME=host.example.org sets control/me"
	@echo "make install-links ROOT=$(ROOT)  make it the system's sendmail (diverts the old MTA's files)"
	@echo "make bench        the comparison with Postfix (about 10 minutes)"
	@echo "make fuzz         every fuzz target for a bounded time"
	@echo "make clean        remove bin/"

build:
	@mkdir -p $(BIN)
	$(GO) build $(GOFLAGS_BUILD) -ldflags='$(GO_LDFLAGS)' -o $(BIN)/ ./cmd/...

fmt-check:
	@[ -x "$(GOFMT)" ] || { echo "gofmt not found (set GOFMT=path)"; exit 1; }
	@out=$$($(GOFMT) -l cmd pkg test bench); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# gotest.sh shows each skipped test with its reason, and everything on a
# failure.
unit:
	GO=$(GO) sh scripts/gotest.sh -count=1 -shuffle=on ./pkg/... ./cmd/...

race:
	CGO_ENABLED=1 $(GO) test -count=1 -race ./pkg/...

integration: build
	GO=$(GO) sh scripts/gotest.sh -count=1 -timeout 20m ./test/...

# 32-bit and big-endian builds, and the unit tests as 386 (scripts/cross.sh).
cross:
	GO=$(GO) sh scripts/cross.sh

test: build fmt-check vet unit race cross integration

run: build
	@sh scripts/run.sh start

stop:
	@sh scripts/run.sh stop

# The man pages go to $(ROOT)/man/manN (N the page's section), as in qmail:
# directories 0755 and pages 0644, owned by root (uid and gid 0) when run
# as root, by the caller otherwise. install(1) removes a page that is there
# before it writes the new one, so a re-install replaces each page (and
# never writes through a link).
install: build
	@[ -z "$(NOT_TAKEN)" ] || { echo "make install: $(NOT_TAKEN) is not used here: give ROOT=DIR, the directory of the tree (default /var/qmail); nothing was changed"; exit 1; }
	@d="$(ROOT)"; while [ ! -e "$$d" ] && [ "$$d" != / ]; do d=$$(dirname "$$d"); done; \
	if [ "$$(id -u)" != 0 ] && ! { [ -d "$$d" ] && [ -w "$$d" ]; }; then \
	  echo "make install: you cannot write $(ROOT): run it as root, or give ROOT=DIR for a tree of your own"; exit 1; fi
	./$(BIN)/qmail-install -root "$(ROOT)" $(if $(ME),-me "$(ME)")
	@set -e; \
	if [ "$$(id -u)" = 0 ]; then own="-o 0 -g 0"; else own=""; fi; \
	install -d -m 0755 $$own "$(ROOT)/man"; n=0; \
	for f in docs/man/*.[1-9]; do \
	  s=$${f##*.}; \
	  install -d -m 0755 $$own "$(ROOT)/man/man$$s"; \
	  install -m 0644 $$own "$$f" "$(ROOT)/man/man$$s/"; n=$$((n+1)); \
	done; \
	echo "$$n man pages installed in $(ROOT)/man: man -M $(ROOT)/man qmail-send"
	@echo
	@if [ "$$(id -u)" = 0 ]; then \
	  echo "Installed in $(ROOT). To make it the system's sendmail (diverting the"; \
	  echo "current MTA's files so package upgrades keep off them), run:"; \
	  echo "    make install-links ROOT='$(ROOT)'"; \
	  echo "For man to find its pages without -M, add this line to /etc/manpath.config:"; \
	  echo "    MANDATORY_MANPATH $(ROOT)/man"; \
	else \
	  echo "Installed in $(ROOT), a tree of your own (its programs find it by their"; \
	  echo "path: $(ROOT)/bin/sendmail). make install-links, which makes a tree the"; \
	  echo "system's sendmail, needs root."; \
	fi

# Link /usr/sbin/sendmail, /usr/lib/sendmail, /usr/bin/mailq and
# /usr/bin/newaliases to the tree, diverting what a Debian package put there
# (files and the package's own symlinks alike, all four before any link is
# made, so that removing the links and the diversions gives them back). A
# link already into $(ROOT), or a path already diverted, is left alone.
install-links:
	@[ -z "$(NOT_TAKEN)" ] || { echo "make install-links: $(NOT_TAKEN) is not used here: give ROOT=DIR, the directory of the tree (default /var/qmail); nothing was changed"; exit 1; }
	@[ "$$(id -u)" = 0 ] || { echo "make install-links changes /usr/sbin and /usr/bin: run it as root"; exit 1; }
	@[ -x "$(ROOT)/bin/sendmail" ] && [ -x "$(ROOT)/bin/newaliases" ] || { \
	  echo "make install-links: no installed tree in $(ROOT) ($(ROOT)/bin/sendmail is missing): nothing was changed;"; \
	  echo "install it first (make install ROOT='$(ROOT)'), or give the ROOT it was installed in"; exit 1; }
	@# Each path is diverted even when nothing is there yet, so that an MTA
	@# package installed later puts its files beside the links, not over them.
	@# A link into the tree is one whose target starts with ROOT/bin/ (a
	@# fixed string: ROOT may hold a dot or a glob character).
	@intree() { case "$$(readlink "$$1")" in "$(ROOT)"/bin/*) return 0 ;; esac; return 1; }; \
	for f in /usr/sbin/sendmail /usr/lib/sendmail /usr/bin/mailq /usr/bin/newaliases; do \
	  if command -v dpkg-divert >/dev/null \
	     && ! intree "$$f" \
	     && [ -z "$$(dpkg-divert --list "$$f")" ]; then \
	    dpkg-divert --local --rename --add "$$f"; fi; \
	done
	ln -sf "$(ROOT)/bin/sendmail" /usr/sbin/sendmail
	ln -sf "$(ROOT)/bin/sendmail" /usr/lib/sendmail
	ln -sf "$(ROOT)/bin/sendmail" /usr/bin/mailq
	ln -sf "$(ROOT)/bin/newaliases" /usr/bin/newaliases

bench: build
	@sh bench/run.sh

fuzz:
	@sh scripts/fuzz.sh

clean:
	rm -rf $(BIN)
